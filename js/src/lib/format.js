// Formatting shared by the widgets. Pure functions: unit-tested without a DOM.

const INT = new Intl.NumberFormat("en-US");

/** Parse an ISO timestamp (any number of fraction digits, Z or an offset) to ms. */
export function parseIso(iso) {
  if (!iso || typeof iso !== "string") return null;
  // Date.parse is only specified for up to 3 fraction digits: trim microseconds.
  const t = Date.parse(iso.replace(/(\.\d{3})\d+/, "$1"));
  return Number.isNaN(t) ? null : t;
}

/**
 * "never", "just now", "12 s ago", "5 min ago", "3 h ago", "2 d ago".
 * @param {string | null | undefined} iso
 * @param {number} [now] ms since the epoch
 */
export function relativeTime(iso, now = Date.now()) {
  const t = parseIso(iso);
  if (t === null) return "never";
  const s = Math.floor((now - t) / 1000);
  if (s < 5) return "just now"; // also a clock slightly ahead of ours
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} d ago`;
}

/** 12345 -> "12,345"; null -> "0". */
export function formatInt(n) {
  return INT.format(Number.isFinite(n) ? n : 0);
}

/** 1234567 -> "1.2M", 12345 -> "12.3k", 999 -> "999". */
export function formatCompact(n) {
  if (!Number.isFinite(n)) return "0";
  const abs = Math.abs(n);
  if (abs >= 1e6) return `${trim(n / 1e6)}M`;
  if (abs >= 1e4) return `${trim(n / 1e3)}k`;
  return INT.format(n);
}

function trim(x) {
  return (Math.round(x * 10) / 10).toString();
}

/** USD: null -> "—", 0 -> "$0.00", 0.00123 -> "$0.0012", 1.5 -> "$1.50". */
export function formatCost(cost) {
  if (cost === null || cost === undefined || !Number.isFinite(cost)) return "—";
  if (cost === 0) return "$0.00";
  if (Math.abs(cost) < 0.01) return `$${Number(cost.toPrecision(2))}`;
  return `$${cost.toFixed(2)}`;
}

/** USD per token -> "$2.50/M". */
export function formatPricePerMillion(perToken) {
  if (perToken === null || perToken === undefined || !Number.isFinite(perToken)) return "";
  const perM = perToken * 1e6;
  return `$${perM >= 10 ? perM.toFixed(0) : Number(perM.toPrecision(3))}/M`;
}

/** 128000 -> "128k ctx". */
export function formatContext(n) {
  if (!Number.isFinite(n) || n <= 0) return "";
  return n >= 1000 ? `${Math.round(n / 1000)}k ctx` : `${n} ctx`;
}

/**
 * What the list says about a provider's key. Never more than the masked hint.
 * @param {{key_source?: string, api_key_hint?: string | null, provider_type?: string}} p
 * @param {boolean} needsKey
 * @returns {{kind: string, text: string}}
 */
export function keyStatus(p, needsKey) {
  const hint = p.api_key_hint ? ` (${p.api_key_hint})` : "";
  switch (p.key_source) {
    case "stored": return { kind: "stored", text: `Key stored${hint}` };
    case "session": return { kind: "session", text: `Key for this session${hint}` };
    case "environment": return { kind: "environment", text: `Key from environment${hint}` };
    case "managed":
      return p.has_api_key ? { kind: "managed", text: `Key managed by your administrator${hint}` }
        : { kind: "missing", text: "Key missing (managed: ask your administrator)" };
    default:
      return needsKey
        ? { kind: "missing", text: "Key missing" }
        : { kind: "none", text: "No key (not required)" };
  }
}

/**
 * What people read for a provider: the name first, then its readable type, "Work (OpenAI)";
 * just the name when it already says the type. Twin of schema.display_label in Python;
 * `typeNames` is the kernel's table (schema.provider_types[].label), never a copy.
 * @param {{name?: string, id?: string, provider_type?: string}} p
 * @param {Record<string, string>} typeNames
 */
export function displayLabel(p, typeNames) {
  const name = p.name || p.id || "";
  const kind = typeNames[p.provider_type] || p.provider_type || "";
  return !kind || name.toLowerCase().includes(kind.toLowerCase()) ? name : `${name} (${kind})`;
}
