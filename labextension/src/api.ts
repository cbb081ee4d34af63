/**
 * The viagent REST API (`/viagent/api/…` on the Jupyter server): typed requests, typed errors.
 * `ServerConnection.makeRequest` adds Jupyter's authentication and XSRF token.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface IFieldError {
  field: string;
  message: string;
}

export interface IProvider {
  id: string;
  provider_type: string;
  name: string;
  label: string;
  base_url: string | null;
  endpoint: string;
  default_model: string | null;
  settings: Record<string, number | null>;
  headers: Record<string, string>;
  timeout: number | null;
  max_retries: number | null;
  has_api_key: boolean;
  api_key_hint: string | null;
  key_source: string;
  version: number;
  /** An administrator's provider (viagent.toml): read-only here. */
  managed?: boolean;
  managed_by?: string | null;
}

export interface IUsageTotals {
  requests?: number;
  prompt_tokens?: number;
  completion_tokens?: number;
  cost?: number | null;
  errors?: number;
  last_used?: string | null;
}

export interface IUsageRecord extends IUsageTotals {
  provider: string;
  model: string;
}

export interface IBudget {
  usd: number;
  spent: number;
  period: string;
}

export interface IUsage {
  period: 'today' | 'all';
  totals: IUsageTotals;
  records: IUsageRecord[];
  budget?: IBudget | null;
}

export interface IState {
  version: number;
  home: string;
  providers: IProvider[];
  selected: string | null;
  damaged: string[];
  usage: IUsage;
  features: Record<string, boolean>;
}

export interface IProviderType {
  value: string;
  label: string;
  default_base_url: string | null;
  needs_key: boolean;
  env: string[];
}

export interface ISettingSpec {
  name: string;
  label: string;
  default: number | null;
  integer: boolean;
  step: number;
  minimum?: number;
  maximum?: number;
  exclusive_minimum?: number;
}

export interface ISchema {
  provider_types: IProviderType[];
  settings: ISettingSpec[];
}

export interface IModel {
  id: string;
  name: string | null;
  context_length: number | null;
  pricing: Record<string, number> | null;
}

export interface IModelList {
  provider: string;
  models: IModel[];
  count: number;
  fetched_at: string | null;
  from_cache: boolean;
  stale: boolean;
  refreshed: boolean;
  added: string[];
  removed: string[];
  warning: string | null;
}

/** USD per million tokens as exact decimal strings (`"0.15"`), or null where not listed. */
export interface IPriceValues {
  input: string;
  output: string;
  cached_input: string | null;
  cache_write: string | null;
  source: string;
  as_of: string | null;
}

export interface IPrice {
  provider: string;
  model: string;
  price: IPriceValues | null;
}

export interface ITestResult {
  latency_ms: number;
  text: string;
  model: string | null;
  finish_reason: string | null;
}

/** A refusal from the server: `{code, message, errors?}`. */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  readonly errors: IFieldError[];
  /** PROVIDER_MANAGED: the administrator's file that manages the provider. */
  readonly managedBy: string | null;

  constructor(
    status: number,
    code: string,
    message: string,
    errors: IFieldError[] = [],
    managedBy: string | null = null
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.errors = errors;
    this.managedBy = managedBy;
  }

  /** A refusal by the administrator (a managed provider, or the policy). */
  get refusedByAdmin(): boolean {
    return this.code === 'PROVIDER_MANAGED' || this.code === 'POLICY_REFUSED';
  }
}

const settings = ServerConnection.makeSettings();

export async function request<T>(
  path: string,
  init: RequestInit = {},
  signal?: AbortSignal
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, 'viagent', 'api', path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, { ...init, signal }, settings);
  } catch (error) {
    if ((error as Error).name === 'AbortError') {
      throw error;
    }
    throw new ApiError(0, 'SERVER_UNREACHABLE', 'The Jupyter server did not answer; is it running?');
  }
  let data: any = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const code = data?.code ?? `HTTP_${response.status}`;
    const message =
      data?.message ??
      (response.status === 404
        ? 'The viagent server extension is not enabled on this Jupyter server.'
        : `Request failed (${response.status}).`);
    throw new ApiError(response.status, code, message, data?.errors ?? [], data?.managed_by ?? null);
  }
  return data as T;
}

function json(method: string, body: unknown): RequestInit {
  return { method, body: JSON.stringify(body) };
}

const enc = encodeURIComponent;

export const api = {
  state: (): Promise<IState> => request<IState>('state'),
  changes: (since: number, signal: AbortSignal): Promise<IState> =>
    request<IState>(`changes?since=${since}`, {}, signal),
  schema: (): Promise<ISchema> => request<ISchema>('schema'),
  create: (fields: Record<string, unknown>, apiKey?: string): Promise<IProvider> =>
    request<IProvider>('providers', json('POST', apiKey ? { fields, api_key: apiKey } : { fields })),
  update: (id: string, fields: Record<string, unknown>, expected?: number): Promise<IProvider> =>
    request<IProvider>(
      `providers/${enc(id)}`,
      json('PATCH', expected === undefined ? { fields } : { fields, expected_version: expected })
    ),
  remove: (id: string): Promise<unknown> => request(`providers/${enc(id)}`, { method: 'DELETE' }),
  setKey: (id: string, apiKey: string): Promise<IProvider> =>
    request<IProvider>(`providers/${enc(id)}/key`, json('PUT', { api_key: apiKey })),
  removeKey: (id: string): Promise<IProvider> =>
    request<IProvider>(`providers/${enc(id)}/key`, { method: 'DELETE' }),
  models: (id: string, refresh: boolean): Promise<IModelList> =>
    refresh
      ? request<IModelList>(`providers/${enc(id)}/models`, json('POST', { refresh: true }))
      : request<IModelList>(`providers/${enc(id)}/models`),
  test: (id: string): Promise<ITestResult> =>
    request<ITestResult>(`providers/${enc(id)}/test`, { method: 'POST' }),
  price: (id: string, model?: string): Promise<IPrice> =>
    request<IPrice>(`prices?provider=${enc(id)}${model ? `&model=${enc(model)}` : ''}`),
  select: (id: string | null): Promise<unknown> => request('selected', json('PUT', { provider: id }))
};
