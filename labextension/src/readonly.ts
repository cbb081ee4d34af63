/**
 * What the editor shows that it cannot change: a model's price (from `/viagent/api/prices`)
 * and the read-only view of a provider the administrator manages (viagent.toml): its fields
 * as text, Use and Test, no Delete and no editing fields.
 */
import { api, ApiError, IPrice, IProvider } from './api';
import { button, h } from './dom';

/** `0.6` → `0.60`: at least two decimals, never fewer digits than the server gave. */
export function dollars(decimal: string): string {
  const [whole, frac = ''] = decimal.split('.');
  return `$${whole}.${frac.padEnd(2, '0')}`;
}

/** `$0.15 / $0.60 per M tokens · catalogue, 2026-12-05`, or `price unknown`. */
export function priceText(p: IPrice): string {
  const v = p.price;
  if (!v) {
    return 'price unknown';
  }
  const when = v.as_of ? `, ${v.as_of}` : '';
  return `${dollars(v.input)} / ${dollars(v.output)} per M tokens · ${v.source}${when}`;
}

/** A line that shows the price of `model` (default: the provider's default model). */
export class PriceLine {
  readonly el = h('div', { class: 'jp-viagent-hint jp-viagent-price', 'aria-live': 'polite' });
  private _asked = 0;

  constructor(private _provider: string) {}

  async show(model: string | null): Promise<void> {
    const asked = ++this._asked;
    if (!model) {
      this.el.textContent = '';
      return;
    }
    try {
      const p = await api.price(this._provider, model);
      if (asked === this._asked) {
        this.el.textContent = priceText(p);
        this.el.title = p.price
          ? `Input / output, USD per million tokens (${p.model})` +
            (p.price.cached_input ? `; cached input ${dollars(p.price.cached_input)}` : '')
          : `No price is known for ${p.model}; set one with ws.pricing.set(...)`;
      }
    } catch (error) {
      if (asked === this._asked) {
        // NOT_AVAILABLE (an older package) shows nothing; anything else its one line
        this.el.textContent =
          error instanceof ApiError && error.code !== 'NOT_AVAILABLE' ? error.message : '';
      }
    }
  }
}

export function managedTitle(p: IProvider): string {
  return `Managed by your administrator${p.managed_by ? ` (${p.managed_by})` : ''}: read-only`;
}

export function managedBadge(p: IProvider): HTMLElement {
  return h('span', {
    class: 'jp-viagent-badge jp-viagent-managed',
    text: 'managed (read-only)',
    title: managedTitle(p)
  });
}

export interface IReadOnlyActions {
  selected: boolean;
  typeLabel: string;
  close: () => void;
  use: () => void;
  test: () => Promise<string>;
}

/** The editor of a managed provider: the facts, Use and Test; nothing to edit or delete. */
export function managedView(p: IProvider, actions: IReadOnlyActions): HTMLElement {
  const price = new PriceLine(p.id);
  void price.show(p.default_model);
  const result = h('div', { class: 'jp-viagent-notice', 'aria-live': 'polite' });
  const fact = (label: string, value: string) =>
    h('div', { class: 'jp-viagent-fact' }, h('span', { class: 'jp-viagent-hint', text: `${label}: ` }), value);
  return h(
    'div',
    { class: 'jp-viagent-form jp-mod-readonly', role: 'group', 'aria-label': `${p.label} (read-only)` },
    h(
      'div',
      { class: 'jp-viagent-form-head' },
      h('h3', { class: 'jp-viagent-subtitle', text: p.name || p.id }),
      button('Close', actions.close, { class: 'jp-viagent-button jp-mod-minimal', title: 'Close' })
    ),
    h('div', {}, managedBadge(p)),
    h('div', { class: 'jp-viagent-hint jp-viagent-endpoint', title: p.endpoint },
      `${actions.typeLabel} · ${p.id} · ${p.endpoint}`),
    h('div', { class: 'jp-viagent-hint', text: `${managedTitle(p)}.` }),
    fact('Default model', p.default_model ?? 'none'),
    price.el,
    fact('API key', p.has_api_key ? `managed · ${p.api_key_hint ?? ''}` : 'none (managed)'),
    h(
      'div',
      { class: 'jp-viagent-actions' },
      actions.selected ? null : button('Use', actions.use, { 'data-action': 'use' }),
      button('Test', () => {
        result.textContent = 'Testing…';
        delete result.dataset.kind;
        actions.test().then(
          text => {
            result.textContent = text;
            result.dataset.kind = 'ok';
          },
          (error: unknown) => {
            result.textContent = error instanceof Error ? error.message : String(error);
            result.dataset.kind = 'error';
          }
        );
      }, { title: 'Send a tiny request (a few tokens)', 'data-action': 'test' })
    ),
    result
  );
}
