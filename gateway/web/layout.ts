/** The tracker page's frame and the one HTML escaper every page uses. */
import type { Principal } from "./auth";

export const escapeHtml = (value: unknown) =>
  String(value ?? "").replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string,
  );

const STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.6rem 1.2rem;display:flex;justify-content:space-between;align-items:center}
header a{color:#fff}header button{color:#fff;background:transparent;border:1px solid #fff;border-radius:3px;cursor:pointer}main{padding:1rem 1.2rem;max-width:1280px}
table{border-collapse:collapse;width:100%;background:#fff}th,td{padding:.35rem .5rem;border-bottom:1px solid #e3e6eb;text-align:left;vertical-align:top}
th{background:#eef0f4;font-weight:600}form.search{display:flex;flex-wrap:wrap;gap:.5rem;margin-bottom:1rem}
input,select,button{font:inherit;padding:.3rem .45rem}.status{font-weight:600;padding:.05rem .4rem;border-radius:3px}
.Deliver{background:#d9f2df}.Quarantine{background:#ffe8b3}.Reject,.Delete{background:#f7d4d4}.Pending,.Deferred{background:#dde7f7}
.rule{color:#8a4b00;font-weight:700;margin-left:.3rem}.actions form{display:inline-block;margin-right:.5rem}
.note{background:#fff;border-left:4px solid #1d6fd6;padding:.5rem .8rem;margin-bottom:1rem}code{font-size:12px}`;

export function layout(title: string, body: string, principal?: Principal, refreshSeconds?: number): string {
  const who = principal
    ? `<span>${escapeHtml(principal.name)} (${escapeHtml(principal.role)})</span> <form method="post" action="/logout" style="display:inline"><input type="hidden" name="_csrf" value="${escapeHtml(principal.session?.csrf)}"><button>Sign out</button></form>`
    : "";
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
${refreshSeconds ? `<meta http-equiv="refresh" content="${refreshSeconds}">` : ""}<title>${escapeHtml(title)} · Moat</title><style>${STYLE}</style></head><body><header><a href="/"><strong>Moat</strong> Live Email Tracker</a><div>${who}</div></header><main>${body}</main></body></html>`;
}
