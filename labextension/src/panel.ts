/**
 * The LLM providers sidebar: the list (Use, open to edit), an Add form, and an editor per
 * provider (fields, write-only key, model picker with refresh and diff, settings, Test, Delete).
 * Field errors from the server sit under their fields. Keys are typed into password inputs,
 * sent once and never read back: the page only ever sees `has_api_key`, its source and a hint.
 */
import { Widget } from '@lumino/widgets';

import { api, ApiError, IModelList, IProvider, IProviderType, ISchema } from './api';
import { button, h } from './dom';
import { formatCost, formatInt, LLMModel } from './model';
import { managedBadge, managedView, PriceLine } from './readonly';

type Fields = Record<string, unknown>;

const KEY_SOURCES: Record<string, string> = {
  stored: 'Key stored',
  session: 'Session key',
  environment: 'Key from environment',
  managed: 'Managed key',
  none: 'No key'
};
const KEY_STATES: Record<string, string> = {
  stored: 'Stored, encrypted',
  session: 'Held for this session only',
  environment: 'From the environment',
  managed: 'Managed by your administrator',
  none: 'No key'
};

function plural(n: number | undefined, word: string): string {
  return `${formatInt(n)} ${word}${n === 1 ? '' : 's'}`;
}

function when(iso: string): string {
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleDateString([], { month: 'short', day: 'numeric' });
}

function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    return error.message;
  }
  return 'Something went wrong; see the browser console.';
}

/** A form field: label, control, hint and the place for its error. */
class Field {
  readonly row: HTMLDivElement;
  readonly error: HTMLDivElement;

  constructor(
    readonly name: string,
    label: string,
    readonly control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
    hint?: string
  ) {
    const id = `jp-viagent-${Math.random().toString(36).slice(2)}`;
    control.id = id;
    this.error = h('div', { class: 'jp-viagent-field-error', role: 'alert' });
    this.row = h(
      'div',
      { class: 'jp-viagent-field' },
      h('label', { for: id, text: label }),
      control,
      hint ? h('div', { class: 'jp-viagent-hint', text: hint }) : null,
      this.error
    );
    control.setAttribute('aria-describedby', `${id}-err`);
    this.error.id = `${id}-err`;
  }

  setError(message: string | null): void {
    this.error.textContent = message ?? '';
    this.row.classList.toggle('jp-mod-error', !!message);
  }
}

function input(attrs: Record<string, string | undefined> = {}): HTMLInputElement {
  const el = h('input', { class: 'jp-viagent-input', type: 'text', spellcheck: 'false' });
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined) {
      el.setAttribute(k, v);
    }
  }
  return el;
}

/** A message line (status or error) that belongs to the form that produced it. */
class Notice {
  readonly el = h('div', { class: 'jp-viagent-notice', 'aria-live': 'polite' });

  show(text: string, kind: 'info' | 'error' | 'ok' = 'info'): void {
    this.el.textContent = text;
    this.el.dataset.kind = kind;
  }

  clear(): void {
    this.el.textContent = '';
    delete this.el.dataset.kind;
  }
}

/** Shared: map server field errors onto fields; the rest into the notice. */
function applyErrors(error: unknown, fields: Field[], notice: Notice): void {
  for (const f of fields) {
    f.setError(null);
  }
  if (error instanceof ApiError && error.errors.length) {
    const rest: string[] = [];
    for (const e of error.errors) {
      const root = e.field.split('.')[0];
      const field = fields.find(f => f.name === root || f.name === e.field);
      if (field) {
        field.setError(field.error.textContent ? `${field.error.textContent}; ${e.message}` : e.message);
      } else {
        rest.push(`${e.field}: ${e.message}`);
      }
    }
    notice.show(rest.length ? rest.join('. ') : 'Please fix the fields marked below.', 'error');
    return;
  }
  notice.show(describeError(error), 'error');
}

function headersText(headers: Record<string, string> | undefined): string {
  return Object.entries(headers ?? {})
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n');
}

function typeOf(schema: ISchema | null, value: string): IProviderType | undefined {
  return schema?.provider_types.find(t => t.value === value);
}

export class LLMPanel extends Widget {
  private _usage = h('div', { class: 'jp-viagent-usage' });
  private _list = h('ul', { class: 'jp-viagent-list', 'aria-label': 'LLM providers' });
  private _status = new Notice();
  private _form = h('div', { class: 'jp-viagent-form-area' });
  private _add: HTMLButtonElement;
  private _editing: string | null = null;
  private _editingVersion = -1;
  private _dirty = false;
  /** A key message that outlives the editor's redraw its own save causes. */
  private _keyMessage: { id: string; text: string; kind: 'ok' | 'error' } | null = null;

  constructor(private _model: LLMModel) {
    super();
    this.id = 'viagent-llm-sidebar';
    this.addClass('jp-viagent-panel');
    const addButton = button('Add', () => this.openAdd(), {
      class: 'jp-viagent-button jp-mod-accept',
      title: 'Add a provider',
      'data-action': 'add',
      disabled: true
    });
    this._add = addButton;
    this.node.append(
      h(
        'header',
        { class: 'jp-viagent-header' },
        h('h2', { class: 'jp-viagent-title', text: 'LLM providers' }),
        addButton
      ),
      this._usage,
      this._status.el,
      this._list,
      this._form
    );
    this._model.changed.connect(this.render, this);
    this.render();
  }

  dispose(): void {
    this._model.changed.disconnect(this.render, this);
    super.dispose();
  }

  // -- the list ------------------------------------------------------------------------------
  render(): void {
    const state = this._model.state;
    const error = this._model.error;
    if (error && !state) {
      this._status.show(error.message, 'error');
    } else if (error) {
      this._status.show(`Lost the server: ${error.message} Retrying…`, 'error');
    } else if (this._status.el.dataset.kind === 'error') {
      this._status.clear();
    }
    this._renderUsage();
    this._add.disabled = !state || !this._model.schema; // the form needs the provider types
    this._list.replaceChildren();
    if (!state) {
      this._list.append(h('li', { class: 'jp-viagent-empty', text: 'Loading…' }));
      return;
    }
    if (!state.providers.length) {
      this._list.append(
        h('li', { class: 'jp-viagent-empty', text: 'No providers yet. Add one to start.' })
      );
    }
    for (const p of state.providers) {
      this._list.append(this._row(p, p.id === state.selected));
    }
    for (const id of state.damaged) {
      this._list.append(
        h('li', {
          class: 'jp-viagent-empty jp-mod-error',
          text: `'${id}' is damaged in the database; delete it and add it again.`
        })
      );
    }
    this._syncForm();
  }

  private _renderUsage(): void {
    const usage = this._model.state?.usage;
    this._usage.replaceChildren();
    if (!usage) {
      return;
    }
    const t = usage.totals;
    const tokens = (t.prompt_tokens ?? 0) + (t.completion_tokens ?? 0);
    this._usage.append(
      h('span', { class: 'jp-viagent-usage-period', text: usage.period === 'today' ? 'Today' : 'All time' }),
      h('span', { text: plural(t.requests, 'request') }),
      h('span', { text: plural(tokens, 'token') }),
      h('span', { text: formatCost(t.cost) })
    );
    this._usage.title =
      usage.period === 'today'
        ? 'Usage since 00:00 UTC, every kernel on this workspace'
        : 'Usage of every kernel on this workspace, all time (per-day totals are not available in this version)';
  }

  private _row(p: IProvider, selected: boolean): HTMLLIElement {
    const open = this._editing === p.id;
    const main = h(
      'button',
      {
        type: 'button',
        class: 'jp-viagent-row-main',
        'aria-expanded': open ? 'true' : 'false',
        title: `Edit ${p.label}`
      },
      h('span', { class: 'jp-viagent-row-name', text: p.name || p.id }),
      p.managed ? managedBadge(p) : null,
      h(
        'span',
        { class: 'jp-viagent-row-meta' },
        `${typeOf(this._model.schema, p.provider_type)?.label ?? p.provider_type} · ${p.default_model ?? 'no default model'}`
      ),
      h('span', {
        class: `jp-viagent-row-key${!p.has_api_key && this._needsKey(p) ? ' jp-mod-missing' : ''}`,
        text: p.has_api_key
          ? `${KEY_SOURCES[p.key_source] ?? 'Key'} · ${p.api_key_hint ?? ''}`
          : this._needsKey(p)
            ? 'No API key'
            : 'No key needed'
      })
    );
    main.addEventListener('click', () => (open ? this.closeForm() : this.openEdit(p.id)));
    if (p.managed) {
      main.title = `Show ${p.label} (managed by your administrator: read-only)`;
    }
    const use = selected
      ? h('span', { class: 'jp-viagent-badge', text: 'In use' })
      : button('Use', () => void this._select(p.id), {
          title: `Use ${p.label} for %%llm and new chats`,
          'data-action': 'use'
        });
    const li = h(
      'li',
      { class: `jp-viagent-row${selected ? ' jp-mod-selected' : ''}${open ? ' jp-mod-open' : ''}` },
      main,
      use
    );
    li.dataset.providerId = p.id;
    return li;
  }

  private _needsKey(p: IProvider): boolean {
    return typeOf(this._model.schema, p.provider_type)?.needs_key ?? true;
  }

  private async _select(id: string | null): Promise<void> {
    try {
      await api.select(id);
      await this._model.reload();
    } catch (error) {
      this._status.show(describeError(error), 'error');
    }
  }

  // -- forms ---------------------------------------------------------------------------------
  closeForm(): void {
    this._editing = null;
    this._dirty = false;
    this._form.replaceChildren();
    this.render();
  }

  openAdd(): void {
    this._editing = null;
    this._form.replaceChildren(this._addForm());
    this.render();
    this._form.querySelector('input')?.focus();
  }

  openEdit(id: string): void {
    const p = this._model.state?.providers.find(x => x.id === id);
    if (!p) {
      return;
    }
    this._editing = id;
    this._editingVersion = p.version;
    this._dirty = false;
    this._form.replaceChildren(this._editorOf(p));
    this.render();
  }

  /** Keep the editor true to the store: closed when its provider went, redrawn when it
   * changed elsewhere (unless the user is typing: then say so). */
  private _syncForm(): void {
    if (this._editing === null) {
      return;
    }
    const p = this._model.state?.providers.find(x => x.id === this._editing);
    if (!p) {
      this._editing = null;
      this._form.replaceChildren();
      this._status.show('The provider you were editing was deleted elsewhere.', 'info');
      return;
    }
    if (p.version !== this._editingVersion) {
      this._editingVersion = p.version;
      if (!this._dirty) {
        const focused = document.activeElement?.getAttribute('data-field');
        this._form.replaceChildren(this._editorOf(p));
        if (focused) {
          (this._form.querySelector(`[data-field="${focused}"]`) as HTMLElement | null)?.focus();
        }
      } else {
        this._form
          .querySelector('.jp-viagent-stale')
          ?.replaceChildren('Changed elsewhere; saving may be refused. Reopen to see it.');
      }
    }
  }

  /** The editor, or the read-only view of a provider the administrator manages. */
  private _editorOf(p: IProvider): HTMLElement {
    if (!p.managed) {
      return this._editForm(p);
    }
    return managedView(p, {
      selected: this._model.state?.selected === p.id,
      typeLabel: typeOf(this._model.schema, p.provider_type)?.label ?? p.provider_type,
      close: () => this.closeForm(),
      use: () => void this._select(p.id),
      test: async () => {
        try {
          const r = await api.test(p.id);
          return `OK · ${r.model ?? 'model'} answered in ${r.latency_ms} ms`;
        } catch (error) {
          throw new Error(describeError(error));
        }
      }
    });
  }

  private _typeSelect(value: string): HTMLSelectElement {
    const select = h('select', { class: 'jp-viagent-input' });
    for (const t of this._model.schema?.provider_types ?? []) {
      select.append(h('option', { value: t.value, text: t.label, selected: t.value === value }));
    }
    return select;
  }

  private _addForm(): HTMLElement {
    const notice = new Notice();
    const type = new Field('provider_type', 'Type', this._typeSelect('openai'));
    const id = new Field('id', 'Id', input({ placeholder: 'e.g. work-openai', autocomplete: 'off' }),
      'Used in %%llm -p ID; letters, digits, - and _.');
    const name = new Field('name', 'Name', input({ placeholder: 'optional' }));
    const baseUrl = new Field('base_url', 'Base URL', input());
    const model = new Field('default_model', 'Default model', input({ placeholder: 'pick after adding, or type one' }));
    const key = new Field('api_key', 'API key', input({ type: 'password', autocomplete: 'off' }));
    const fields = [id, type, name, baseUrl, model, key];
    const updateType = () => {
      const t = typeOf(this._model.schema, type.control.value);
      (baseUrl.control as HTMLInputElement).placeholder = t?.default_base_url ?? 'required';
      key.error.textContent = '';
      const hint = t?.needs_key
        ? `Stored encrypted; never shown again.${t.env.length ? ` Or set $${t.env.join(' / $')}.` : ''}`
        : 'Optional for this type.';
      key.row.querySelector('.jp-viagent-hint')?.remove();
      key.row.insertBefore(h('div', { class: 'jp-viagent-hint', text: hint }), key.error);
    };
    type.control.addEventListener('change', updateType);
    updateType();
    const submit = async () => {
      const fieldsOut: Fields = {
        id: id.control.value.trim(),
        provider_type: type.control.value
      };
      for (const f of [name, baseUrl, model]) {
        const v = f.control.value.trim();
        if (v) {
          fieldsOut[f.name] = v;
        }
      }
      const apiKey = (key.control as HTMLInputElement).value;
      notice.show('Adding…');
      try {
        const created = await api.create(fieldsOut, apiKey || undefined);
        (key.control as HTMLInputElement).value = '';
        await this._model.reload();
        this.openEdit(created.id);
        this._status.show(`Added '${created.id}'.`, 'ok');
      } catch (error) {
        (key.control as HTMLInputElement).value = '';
        applyErrors(error, fields, notice);
      }
    };
    const form = h(
      'form',
      { class: 'jp-viagent-form', 'aria-label': 'Add a provider' },
      h('h3', { class: 'jp-viagent-subtitle', text: 'Add a provider' }),
      notice.el,
      ...fields.map(f => f.row),
      h(
        'div',
        { class: 'jp-viagent-actions' },
        h('button', { type: 'submit', class: 'jp-viagent-button jp-mod-accept', text: 'Add provider', 'data-action': 'create' }),
        button('Cancel', () => this.closeForm())
      )
    );
    form.addEventListener('submit', event => {
      event.preventDefault();
      void submit();
    });
    return form;
  }

  private _editForm(p: IProvider): HTMLElement {
    const notice = new Notice();
    const markDirty = () => {
      this._dirty = true;
    };
    const name = new Field('name', 'Name', input({ value: p.name, 'data-field': 'name' }));
    const listId = `jp-viagent-models-${p.id.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    const model = new Field(
      'default_model',
      'Default model',
      input({ value: p.default_model ?? '', list: listId, 'data-field': 'default_model', placeholder: 'type or pick' })
    );
    const datalist = h('datalist', { id: listId });
    const modelStatus = h('div', { class: 'jp-viagent-hint jp-viagent-models-status', 'aria-live': 'polite' });
    const loadModels = async (refresh: boolean) => {
      modelStatus.textContent = refresh ? 'Refreshing the model list…' : 'Loading the model list…';
      try {
        const list = await api.models(p.id, refresh);
        this._showModels(list, datalist, modelStatus);
      } catch (error) {
        modelStatus.textContent = describeError(error);
        modelStatus.dataset.kind = 'error';
      }
    };
    const refresh = button('Refresh', () => void loadModels(true), {
      title: 'Fetch the model list from the provider now',
      'data-action': 'refresh-models'
    });
    model.row.insertBefore(h('div', { class: 'jp-viagent-inline' }, model.control, refresh), model.error);
    const price = new PriceLine(p.id);
    model.row.append(datalist, modelStatus, price.el);
    void price.show(p.default_model);
    model.control.addEventListener('change', () => void price.show(model.control.value.trim() || p.default_model));

    const baseUrl = new Field('base_url', 'Base URL', input({
      value: p.base_url ?? '',
      placeholder: typeOf(this._model.schema, p.provider_type)?.default_base_url ?? '',
      'data-field': 'base_url'
    }));
    const timeout = new Field('timeout', 'Timeout (s)', input({ type: 'number', min: '0', step: '1', value: p.timeout?.toString() ?? '', 'data-field': 'timeout' }));
    const retries = new Field('max_retries', 'Max retries', input({ type: 'number', min: '0', step: '1', value: p.max_retries?.toString() ?? '', 'data-field': 'max_retries' }));
    const headers = new Field('headers', 'Extra headers', h('textarea', { class: 'jp-viagent-input', rows: 2, spellcheck: 'false', placeholder: 'Name: value (one a line)', 'data-field': 'headers' }), undefined);
    (headers.control as HTMLTextAreaElement).value = headersText(p.headers);

    const settingFields: Field[] = [];
    for (const s of this._model.schema?.settings ?? []) {
      const current = p.settings?.[s.name];
      const el = input({
        type: 'number',
        step: String(s.step),
        min: s.minimum !== undefined ? String(s.minimum) : undefined,
        max: s.maximum !== undefined ? String(s.maximum) : undefined,
        placeholder: s.default === null ? 'provider default' : `default ${s.default}`,
        value: current === null || current === undefined ? '' : String(current),
        'data-field': `settings.${s.name}`
      });
      settingFields.push(new Field(s.name, s.label, el));
    }
    const key = new Field('api_key', p.has_api_key ? 'Replace the key' : 'API key', input({ type: 'password', autocomplete: 'off', placeholder: p.has_api_key ? 'new key' : 'paste the key', 'data-field': 'api_key' }));
    const keyState = h(
      'div',
      { class: `jp-viagent-key-state${!p.has_api_key && this._needsKey(p) ? ' jp-mod-missing' : ''}` },
      h('span', { text: p.has_api_key ? KEY_STATES[p.key_source] ?? 'Key' : this._needsKey(p) ? 'No key yet' : 'None needed' }),
      p.has_api_key ? h('code', { class: 'jp-viagent-key-hint', text: p.api_key_hint ?? '' }) : null
    );
    const keyNotice = new Notice();
    if (this._keyMessage?.id === p.id) {
      keyNotice.show(this._keyMessage.text, this._keyMessage.kind);
      this._keyMessage = null;
    }
    const saveKey = async () => {
      const el = key.control as HTMLInputElement;
      const value = el.value;
      el.value = '';
      keyNotice.show('Saving the key…');
      try {
        await api.setKey(p.id, value);
        keyNotice.show('Key stored.', 'ok');
        this._keyMessage = { id: p.id, text: 'Key stored.', kind: 'ok' };
        await this._model.reload();
        this._keyMessage = null; // shown by the redraw, or still in this form
      } catch (error) {
        applyErrors(error, [key], keyNotice);
      }
    };
    key.control.addEventListener('keydown', event => {
      if ((event as KeyboardEvent).key === 'Enter') {
        event.preventDefault();
        void saveKey();
      }
    });
    const keyActions = h(
      'div',
      { class: 'jp-viagent-actions' },
      button('Save key', () => void saveKey(), { 'data-action': 'save-key' }),
      p.key_source === 'stored' || p.key_source === 'session'
        ? button('Remove key', async () => {
            try {
              await api.removeKey(p.id);
              keyNotice.show('Key removed.', 'ok');
              this._keyMessage = { id: p.id, text: 'Key removed.', kind: 'ok' };
              await this._model.reload();
            } catch (error) {
              keyNotice.show(describeError(error), 'error');
            }
          }, { class: 'jp-viagent-button jp-mod-warn', 'data-action': 'remove-key' })
        : null
    );

    const allFields = [name, model, baseUrl, timeout, retries, headers, ...settingFields];
    for (const f of allFields) {
      f.control.addEventListener('input', markDirty);
    }
    const save = async () => {
      const out: Fields = {
        name: name.control.value.trim() || p.id,
        default_model: model.control.value.trim() || null,
        base_url: baseUrl.control.value.trim() || null,
        headers: headers.control.value
      };
      for (const f of [timeout, retries]) {
        const v = f.control.value.trim();
        out[f.name] = v === '' ? null : Number(v);
      }
      const settings: Record<string, number | null> = {};
      for (const f of settingFields) {
        const v = f.control.value.trim();
        settings[f.name] = v === '' ? null : Number(v);
      }
      out.settings = settings;
      notice.show('Saving…');
      try {
        const saved = await api.update(p.id, out, this._editingVersion);
        this._dirty = false;
        this._editingVersion = saved.version;
        for (const f of allFields) {
          f.setError(null);
        }
        notice.show('Saved.', 'ok');
        await this._model.reload();
      } catch (error) {
        applyErrors(error, allFields, notice);
      }
    };
    const testResult = new Notice();
    const test = async () => {
      testResult.show('Testing…');
      try {
        const r = await api.test(p.id);
        testResult.show(`OK · ${r.model ?? 'model'} answered in ${r.latency_ms} ms`, 'ok');
      } catch (error) {
        testResult.show(describeError(error), 'error');
      }
    };
    const selected = this._model.state?.selected === p.id;
    const remove = async () => {
      if (!window.confirm(`Delete the provider '${p.id}' and its stored key?`)) {
        return;
      }
      try {
        await api.remove(p.id);
        this._editing = null;
        this._form.replaceChildren();
        this._status.show(`Deleted '${p.id}'.`, 'ok');
        await this._model.reload();
      } catch (error) {
        notice.show(describeError(error), 'error');
      }
    };
    const form = h(
      'form',
      { class: 'jp-viagent-form', 'aria-label': `Edit ${p.label}` },
      h(
        'div',
        { class: 'jp-viagent-form-head' },
        h('h3', { class: 'jp-viagent-subtitle', text: p.name || p.id }),
        button('Close', () => this.closeForm(), { class: 'jp-viagent-button jp-mod-minimal', title: 'Close the editor' })
      ),
      h('div', { class: 'jp-viagent-hint jp-viagent-endpoint', title: p.endpoint },
        `${typeOf(this._model.schema, p.provider_type)?.label ?? p.provider_type} · ${p.id} · ${p.endpoint}`),
      h('div', { class: 'jp-viagent-stale jp-viagent-notice', 'data-kind': 'info' }),
      notice.el,
      name.row,
      model.row,
      h('fieldset', { class: 'jp-viagent-group' }, h('legend', { text: 'API key' }), keyState, key.row, keyActions, keyNotice.el),
      h('details', { class: 'jp-viagent-group' }, h('summary', { text: 'Model settings' }), ...settingFields.map(f => f.row)),
      h('details', { class: 'jp-viagent-group' }, h('summary', { text: 'Advanced' }), baseUrl.row, timeout.row, retries.row, headers.row),
      h(
        'div',
        { class: 'jp-viagent-actions' },
        h('button', { type: 'submit', class: 'jp-viagent-button jp-mod-accept', text: 'Save', 'data-action': 'save' }),
        selected ? null : button('Use', () => void this._select(p.id), { 'data-action': 'use' }),
        button('Test', () => void test(), { title: 'Send a tiny request (a few tokens)', 'data-action': 'test' }),
        button('Delete', () => void remove(), {
          class: 'jp-viagent-button jp-mod-warn',
          disabled: selected,
          title: selected ? 'In use: select another provider first' : `Delete ${p.id}`,
          'data-action': 'delete'
        })
      ),
      testResult.el
    );
    form.addEventListener('submit', event => {
      event.preventDefault();
      void save();
    });
    void loadModels(false);
    return form;
  }

  private _showModels(list: IModelList, datalist: HTMLDataListElement, status: HTMLElement): void {
    datalist.replaceChildren(
      ...list.models.map(m => h('option', { value: m.id, text: m.name && m.name !== m.id ? m.name : '' }))
    );
    const parts = [plural(list.count, 'model')];
    if (list.refreshed || list.added.length || list.removed.length) {
      parts.push(list.added.length || list.removed.length
        ? `+${list.added.length} new, −${list.removed.length} gone`
        : 'no change');
    }
    if (list.fetched_at) {
      parts.push(`fetched ${when(list.fetched_at)}`);
    }
    if (list.stale) {
      parts.push('(stale: the provider did not answer)');
    }
    status.textContent = parts.join(' · ');
    status.dataset.kind = list.stale ? 'error' : 'info';
    status.title = [
      list.added.length ? `New: ${list.added.slice(0, 20).join(', ')}` : '',
      list.removed.length ? `Gone: ${list.removed.slice(0, 20).join(', ')}` : '',
      list.warning ?? ''
    ].filter(Boolean).join('\n');
  }
}
