/**
 * One live copy of the server's state per page: loaded once, then kept current by a long poll
 * (`/viagent/api/changes`), which the server answers within a poll tick of any write, by this
 * page, another tab, a kernel or any other process on the same workspace home.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { api, ApiError, IProvider, ISchema, IState } from './api';

export class LLMModel {
  private _state: IState | null = null;
  private _schema: ISchema | null = null;
  private _error: ApiError | null = null;
  private _changed = new Signal<this, void>(this);
  private _abort: AbortController | null = null;
  private _running = false;

  get state(): IState | null {
    return this._state;
  }

  get schema(): ISchema | null {
    return this._schema;
  }

  /** The last failure to reach the API (cleared by the next success). */
  get error(): ApiError | null {
    return this._error;
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get selected(): IProvider | null {
    const s = this._state;
    return s?.providers.find(p => p.id === s.selected) ?? null;
  }

  /** Start following the server (idempotent). */
  start(): void {
    if (this._running) {
      return;
    }
    this._running = true;
    void this._loop();
  }

  dispose(): void {
    this._running = false;
    this._abort?.abort();
  }

  /** Load now (after this page's own write: no need to wait for the poll). */
  async reload(): Promise<void> {
    try {
      this._set(await api.state());
    } catch (error) {
      this._fail(error);
    }
  }

  private _set(state: IState): void {
    this._state = state;
    this._error = null;
    this._changed.emit();
  }

  private _fail(error: unknown): void {
    if (error instanceof ApiError) {
      this._error = error;
      this._changed.emit();
    }
  }

  private async _loop(): Promise<void> {
    let delay = 500;
    while (this._running) {
      try {
        if (!this._schema) {
          this._schema = await api.schema();
        }
        if (!this._state) {
          this._set(await api.state());
        }
        this._abort = new AbortController();
        const state = await api.changes(this._state!.version, this._abort.signal);
        if (state.version !== this._state?.version || !this._state) {
          this._set(state);
        }
        delay = 500;
      } catch (error) {
        if ((error as Error).name === 'AbortError' || !this._running) {
          return;
        }
        this._fail(error);
        await new Promise(resolve => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 10000);
      }
    }
  }
}

/** `1,234` */
export function formatInt(n: number | undefined | null): string {
  return (n ?? 0).toLocaleString('en-US');
}

/** `$0.0123`, `$12.40`, or `—` when unknown. */
export function formatCost(cost: number | null | undefined): string {
  if (cost === null || cost === undefined) {
    return '—';
  }
  if (cost === 0) {
    return '$0.00';
  }
  if (cost >= 0.01) {
    return `$${cost.toFixed(2)}`;
  }
  return cost >= 0.0001 ? `$${cost.toFixed(4)}` : `$${cost.toPrecision(2)}`;
}
