/**
 * viagent_jupyter in JupyterLab 4 and Notebook 7: the LLM providers sidebar, a status-bar item,
 * command-palette commands, and a renderer that lets `vj.sidebar()` / `%llm sidebar` open the
 * sidebar from a kernel. Everything talks to the viagent server extension over REST.
 */
import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, InputDialog, Notification } from '@jupyterlab/apputils';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import llmSvg from '../style/llm.svg';
import { api, ApiError } from './api';
import { LLMModel } from './model';
import { LLMPanel } from './panel';
import { LLMStatus } from './status';

export const llmIcon = new LabIcon({ name: 'viagent:llm', svgstr: llmSvg });

export const CommandIDs = {
  open: 'viagent:open-providers',
  select: 'viagent:select-provider',
  refresh: 'viagent:refresh-models'
};

export const SIDEBAR_MIME = 'application/vnd.viagent.sidebar+json';
const FRESH_MS = 60_000;

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'viagent-jupyter:plugin',
  description: 'LLM providers sidebar, status-bar item and commands (viagent_jupyter).',
  autoStart: true,
  optional: [ICommandPalette, IStatusBar, IRenderMimeRegistry, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null,
    rendermime: IRenderMimeRegistry | null
  ) => {
    const model = new LLMModel();
    const panel = new LLMPanel(model);
    panel.title.icon = llmIcon;
    panel.title.caption = 'LLM providers';
    const area = 'right';
    app.shell.add(panel, area, { rank: 900 });
    model.start();

    const open = () => {
      app.shell.activateById(panel.id);
    };

    app.commands.addCommand(CommandIDs.open, {
      label: 'LLM: Open providers',
      caption: 'Open the LLM providers sidebar',
      icon: llmIcon,
      execute: open
    });
    app.commands.addCommand(CommandIDs.select, {
      label: 'LLM: Select provider…',
      execute: async () => {
        await model.reload();
        const state = model.state;
        if (!state || !state.providers.length) {
          Notification.info('No LLM providers yet: add one in the sidebar.');
          open();
          return;
        }
        const labels = state.providers.map(p => `${p.id} — ${p.label}`);
        const current = state.providers.findIndex(p => p.id === state.selected);
        const result = await InputDialog.getItem({
          title: 'Select the LLM provider',
          items: labels,
          current: Math.max(current, 0)
        });
        if (!result.button.accept || result.value === null) {
          return;
        }
        const chosen = state.providers[labels.indexOf(result.value)];
        try {
          await api.select(chosen.id);
          await model.reload();
          Notification.success(`Now using '${chosen.id}'.`, { autoClose: 3000 });
        } catch (error) {
          Notification.error(error instanceof ApiError ? error.message : 'Could not select it.');
        }
      }
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'LLM: Refresh models',
      caption: 'Fetch the model list of the selected provider now',
      execute: async () => {
        const p = model.selected;
        if (!p) {
          Notification.info('Select an LLM provider first (LLM: Select provider…).');
          return;
        }
        // one notification with the outcome: a toast updated in place can stay "pending"
        // when the answer arrives before JupyterLab has drawn it (the first toast of a page)
        try {
          const list = await api.models(p.id, true);
          const diff = list.added.length || list.removed.length
            ? `+${list.added.length} new, −${list.removed.length} gone`
            : 'no change';
          const text = `'${p.id}': ${list.count} models (${diff})${list.stale ? ', stale' : ''}.`;
          if (list.stale) {
            Notification.warning(text, { autoClose: 8000 });
          } else {
            Notification.success(text, { autoClose: 5000 });
          }
        } catch (error) {
          Notification.error(error instanceof ApiError ? error.message : 'Refresh failed.', {
            autoClose: 8000
          });
        }
      }
    });
    for (const command of Object.values(CommandIDs)) {
      palette?.addItem({ command, category: 'LLM' });
    }

    if (statusBar) {
      const item = new LLMStatus(model, open);
      statusBar.registerStatusItem('viagent-jupyter:status', {
        item,
        align: 'left',
        rank: 100,
        isActive: () => true
      });
    }

    // `vj.sidebar()` in a kernel displays this mime type: open the sidebar (once, when fresh)
    if (rendermime) {
      const seen = new Set<string>();
      rendermime.addFactory(
        {
          safe: true,
          mimeTypes: [SIDEBAR_MIME],
          defaultRank: 0,
          createRenderer: () => new SidebarLink(open, seen)
        },
        -1 // before text/plain and the widget view in the same bundle
      );
    }
  }
};

/** What a `vj.sidebar()` output shows: a line and a button; opens the sidebar when new. */
class SidebarLink extends Widget {
  constructor(private _open: () => void, private _seen: Set<string>) {
    super();
    this.addClass('jp-viagent-sidebar-link');
  }

  async renderModel(model: { data: Record<string, unknown> }): Promise<void> {
    const data = (model.data[SIDEBAR_MIME] ?? {}) as { id?: string; created?: number };
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'jp-viagent-button';
    b.textContent = 'Open LLM providers';
    b.addEventListener('click', this._open);
    const text = document.createElement('span');
    text.textContent = 'LLM providers are in the right sidebar (the LLM icon). ';
    this.node.replaceChildren(text, b);
    const fresh = typeof data.created === 'number' && Math.abs(Date.now() - data.created) < FRESH_MS;
    if (fresh && data.id && !this._seen.has(data.id)) {
      this._seen.add(data.id);
      this._open();
    }
  }
}

export default plugin;
