/** The status-bar item: selected provider · model · tokens · cost; click opens the sidebar. */
import { Widget } from '@lumino/widgets';

import { h } from './dom';
import { formatCost, formatInt, LLMModel } from './model';

export class LLMStatus extends Widget {
  private _text = h('span', { class: 'jp-viagent-status-text' });

  constructor(private _model: LLMModel, onClick: () => void) {
    super({ node: h('button', { type: 'button', class: 'jp-viagent-status' }) });
    this.node.append(this._text);
    this.node.addEventListener('click', onClick);
    this._model.changed.connect(this.render, this);
    this.render();
  }

  dispose(): void {
    this._model.changed.disconnect(this.render, this);
    super.dispose();
  }

  render(): void {
    const state = this._model.state;
    if (!state) {
      this._text.textContent = this._model.error ? 'LLM: unavailable' : 'LLM';
      this.node.title = this._model.error?.message ?? 'LLM providers';
      return;
    }
    const p = this._model.selected;
    const t = state.usage.totals;
    const tokens = (t.prompt_tokens ?? 0) + (t.completion_tokens ?? 0);
    const period = state.usage.period === 'today' ? 'today' : 'all time';
    const who = p ? `${p.id} · ${p.default_model ?? 'no model'}` : 'no provider selected';
    const b = state.usage.budget;
    const budget = b ? ` of ${formatCost(b.usd)} ${b.period} budget` : '';
    this._text.textContent = `LLM: ${who} · ${formatInt(tokens)} tok · ${formatCost(t.cost)} ${period}${budget}`;
    this.node.title =
      `${p ? p.label : 'No provider selected'}\n` +
      `${formatInt(t.requests)} requests, ${formatInt(t.prompt_tokens)} prompt + ` +
      `${formatInt(t.completion_tokens)} completion tokens, ${formatCost(t.cost)} ` +
      `(${period === 'today' ? 'today, since 00:00 UTC' : 'all time'}, every kernel)\n` +
      (b ? `Budget: ${formatCost(b.spent)} spent of ${formatCost(b.usd)} per ${b.period}\n` : '') +
      'Click to open the LLM providers sidebar';
  }
}
