//! The status page: one server-rendered HTML document, everything inline (no CDN, no
//! framework). It reads fully without JavaScript; a small inline script fetches
//! `status.json` every second and redraws the numbers, the budget chart and the conflicts.

use std::fmt::Write as _;

use crate::status::{BudgetSample, PortalReport, StatusReport};

/// The page's Content-Security-Policy: only its own inline style and script, and fetches to
/// its own origin.
pub(crate) const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Chart geometry: one bar per sample.
const CHART_W: u32 = 300;
const CHART_H: u32 = 60;
const CHART_SLOTS: u32 = 60;

const STYLE: &str = r#"
:root{--fg:#1d2330;--muted:#667085;--line:#e4e7ec;--bg:#f7f8fa;--ok:#12805c;--warn:#b54708;--bad:#b42318;--bar:#3b6fd8}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;align-items:baseline;gap:1rem;padding:.8rem 1.5rem;background:#fff;border-bottom:1px solid var(--line)}
header h1{font-size:1.15rem;margin:0}
header .muted{font-size:.85rem}
main{padding:1rem 1.5rem;display:grid;gap:1.25rem}
.muted{color:var(--muted)}
body.stale #generated::after{content:" (not updating)";color:var(--bad)}
section.portal{background:#fff;border:1px solid var(--line);border-radius:8px;padding:1rem 1.25rem}
section.portal h2{font-size:1.05rem;margin:0 0 .25rem;display:flex;gap:.6rem;align-items:center}
.badge{font-size:.75rem;padding:.1rem .5rem;border-radius:999px;background:#eef2f6;text-transform:uppercase;letter-spacing:.03em}
.badge.active{background:#e3f6ed;color:var(--ok)}
.badge.parked,.badge.needs_reauth{background:#fef0e6;color:var(--warn)}
.badge.disabled{background:#f2f4f7;color:var(--muted)}
.reason{margin:0 0 .5rem;color:var(--warn)}
.reason:empty{display:none}
.card.wide{grid-column:span 2}
.caption{font-size:.75rem;margin:.2rem 0 .4rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:.8rem;margin:.6rem 0}
.card{border:1px solid var(--line);border-radius:6px;padding:.6rem .8rem}
.card h3{font-size:.8rem;margin:0 0 .4rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.15rem .4rem .15rem 0;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
table.list th{border-bottom:1px solid var(--line);font-size:.8rem;color:var(--muted)}
table.list td{border-bottom:1px solid #f2f4f7;font-size:.85rem}
svg.chart{display:block;width:100%;height:auto;background:#fafbfc;border:1px solid var(--line);border-radius:4px}
svg.chart rect{fill:var(--bar)}
.big{font-size:1.3rem;font-variant-numeric:tabular-nums}
"#;

const SCRIPT: &str = r#"
(function(){
  var W=300,H=60,SLOTS=60,NS="http://www.w3.org/2000/svg";
  function get(o,p){return p.split(".").reduce(function(a,k){return a==null?a:a[k];},o);}
  function bars(svg,samples){
    while(svg.firstChild)svg.removeChild(svg.firstChild);
    var w=W/SLOTS,start=SLOTS-samples.length;
    samples.forEach(function(s,i){
      var h=s.limit>0?Math.max(1,Math.min(H,Math.round(H*s.in_use/s.limit))):0;
      var r=document.createElementNS(NS,"rect");
      r.setAttribute("x",((start+i)*w).toFixed(1));r.setAttribute("y",H-h);
      r.setAttribute("width",(w-1).toFixed(1));r.setAttribute("height",h);
      var t=document.createElementNS(NS,"title");t.textContent=s.in_use+" / "+s.limit;r.appendChild(t);
      svg.appendChild(r);
    });
  }
  function conflicts(tbody,list){
    while(tbody.firstChild)tbody.removeChild(tbody.firstChild);
    list.forEach(function(c){
      var tr=document.createElement("tr");
      [c.at,c.object_type,c.hubspot_id||"",c.field,c.local,c.remote,c.policy,c.winner].forEach(function(v){
        var td=document.createElement("td");td.textContent=v;tr.appendChild(td);});
      tbody.appendChild(tr);
    });
  }
  function tick(){
    fetch("status.json",{cache:"no-store"}).then(function(r){if(!r.ok)throw r.status;return r.json();}).then(function(s){
      var ids=s.portals.map(function(p){return String(p.portal_id);}).join(",");
      if(ids!==document.body.getAttribute("data-portals")){location.reload();return;}
      document.getElementById("generated").textContent=s.generated;
      s.portals.forEach(function(p){
        var sec=document.getElementById("portal-"+p.portal_id);if(!sec)return;
        sec.querySelectorAll("[data-f]").forEach(function(el){
          var v=get(p,el.getAttribute("data-f"));
          el.textContent=(v==null||v==="")?(el.hasAttribute("data-blank")?"":"\u2014"):v;});
        var badge=sec.querySelector(".badge");if(badge)badge.className="badge "+p.status;
        var svg=sec.querySelector("svg.chart");if(svg)bars(svg,p.budget?p.budget.samples:[]);
        var tb=sec.querySelector("tbody.conflicts");if(tb)conflicts(tb,p.recent_conflicts);
      });
      document.body.classList.remove("stale");
    }).catch(function(){document.body.classList.add("stale");});
  }
  setInterval(tick,1000);
})();
"#;

/// Renders the whole page.
pub(crate) fn render(report: &StatusReport) -> String {
    let mut html = String::with_capacity(16 * 1024);
    let ids = report
        .portals
        .iter()
        .map(|p| p.portal_id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>hubsync status</title><style>{STYLE}</style></head>\
         <body data-portals=\"{}\"><header><h1>hubsync</h1>\
         <span class=\"muted\">status as of <span id=\"generated\">{}</span></span></header><main>",
        esc(&ids),
        esc(&report.generated),
    );
    if report.portals.is_empty() {
        html.push_str(
            "<p class=\"muted\">No portal is connected yet. Add one with <code>hubsync portal add</code>.</p>",
        );
    }
    for portal in &report.portals {
        portal_section(&mut html, portal);
    }
    let _ = writeln!(html, "</main><script>{SCRIPT}</script></body></html>");
    html
}

fn portal_section(html: &mut String, p: &PortalReport) {
    let _ = write!(
        html,
        "<section class=\"portal\" id=\"portal-{id}\"><h2>{name} <span class=\"muted\">portal {id}</span> \
         <span class=\"badge {status}\" data-f=\"status\">{status}</span></h2>\
         <p class=\"reason\" data-f=\"status_reason\" data-blank>{reason}</p><div class=\"cards\">",
        id = p.portal_id,
        name = esc(&p.name),
        status = esc(p.status),
        reason = esc(&p.status_reason),
    );

    // Rate budget.
    let (in_use, limit, window, samples) = match &p.budget {
        Some(b) => (
            b.in_use.to_string(),
            b.limit.to_string(),
            format!("{}", b.window_s),
            b.samples.as_slice(),
        ),
        None => ("—".to_owned(), "—".to_owned(), "—".to_owned(), &[][..]),
    };
    let _ = write!(
        html,
        "<div class=\"card\"><h3>Rate budget in use</h3>\
         <p class=\"big\"><span data-f=\"budget.in_use\">{in_use}</span> / <span data-f=\"budget.limit\">{limit}</span>\
         <span class=\"muted\"> in the last <span data-f=\"budget.window_s\">{window}</span> s</span></p>",
    );
    chart(html, samples);
    html.push_str(
        "<p class=\"caption muted\">last minute, one bar per second; full height is the limit</p>",
    );
    let daily = p
        .budget
        .as_ref()
        .and_then(|b| b.daily_remaining)
        .map_or_else(|| "—".to_owned(), |d| d.to_string());
    let in_flight = p
        .budget
        .as_ref()
        .map_or_else(|| "—".to_owned(), |b| b.in_flight.to_string());
    let _ = write!(
        html,
        "<table><tr><th>in flight</th><td class=\"n\" data-f=\"budget.in_flight\">{in_flight}</td></tr>\
         <tr><th>daily remaining</th><td class=\"n\" data-f=\"budget.daily_remaining\">{daily}</td></tr></table>",
    );
    if p.budget.is_none() {
        html.push_str("<p class=\"muted\">Not connected in this process.</p>");
    }
    html.push_str("</div>");

    // Queues.
    let q = &p.queues;
    let _ = write!(
        html,
        "<div class=\"card\"><h3>Queues</h3><table>\
         <tr><th>outbox</th><td class=\"n\" data-f=\"queues.outbox\">{}</td></tr>\
         <tr><th>inbox</th><td class=\"n\" data-f=\"queues.inbox\">{}</td></tr>\
         <tr><th>dead letters</th><td class=\"n\" data-f=\"queues.dead_letters\">{}</td></tr>\
         <tr><th>conflicts (all time)</th><td class=\"n\" data-f=\"queues.conflicts\">{}</td></tr>\
         </table></div>",
        q.outbox, q.inbox, q.dead_letters, q.conflicts,
    );

    // Echoes.
    let e = &p.echoes;
    let _ = write!(
        html,
        "<div class=\"card\"><h3>Echoes dropped</h3><table>\
         <tr><th>change source</th><td class=\"n\" data-f=\"echoes.change_source\">{}</td></tr>\
         <tr><th>origin marker</th><td class=\"n\" data-f=\"echoes.origin\">{}</td></tr>\
         <tr><th>fingerprint</th><td class=\"n\" data-f=\"echoes.fingerprint\">{}</td></tr>\
         </table></div>",
        e.change_source, e.origin, e.fingerprint,
    );

    // Reconcile.
    let r = &p.reconcile;
    html.push_str(
        "<div class=\"card wide\"><h3>Reconcile</h3><table><tr><th></th><th>import</th><th>compared up to</th></tr>",
    );
    for (ty, t) in &r.types {
        let up_to = if t.reconciled_up_to.is_empty() {
            "—"
        } else {
            &t.reconciled_up_to
        };
        let _ = write!(
            html,
            "<tr><th>{ty}</th><td data-f=\"reconcile.types.{ty}.import\">{}</td>\
             <td data-f=\"reconcile.types.{ty}.reconciled_up_to\">{}</td></tr>",
            esc(t.import),
            esc(up_to),
        );
    }
    let _ = write!(
        html,
        "</table><table>\
         <tr><th>repaired locally</th><td class=\"n\" data-f=\"reconcile.repaired_local\">{}</td></tr>\
         <tr><th>re-sent to HubSpot</th><td class=\"n\" data-f=\"reconcile.repaired_remote\">{}</td></tr>\
         <tr><th>applied from HubSpot</th><td class=\"n\" data-f=\"reconcile.applied\">{}</td></tr>\
         <tr><th>written to HubSpot</th><td class=\"n\" data-f=\"reconcile.pushed\">{}</td></tr>\
         </table></div></div>",
        r.repaired_local, r.repaired_remote, r.applied, r.pushed,
    );

    // Recent conflicts.
    html.push_str(
        "<h3>Recent conflicts</h3><table class=\"list\"><thead><tr><th>when</th><th>type</th>\
         <th>HubSpot id</th><th>field</th><th>local</th><th>HubSpot</th><th>policy</th><th>winner</th>\
         </tr></thead><tbody class=\"conflicts\">",
    );
    for c in &p.recent_conflicts {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.at),
            c.object_type,
            esc(c.hubspot_id.as_deref().unwrap_or_default()),
            esc(&c.field),
            esc(&c.local),
            esc(&c.remote),
            esc(&c.policy),
            esc(&c.winner),
        );
    }
    html.push_str("</tbody></table></section>");
}

/// The budget chart: one bar per sample, the newest on the right, full height = the limit.
fn chart(html: &mut String, samples: &[BudgetSample]) {
    let _ = write!(
        html,
        "<svg class=\"chart\" viewBox=\"0 0 {CHART_W} {CHART_H}\" preserveAspectRatio=\"none\" \
         role=\"img\" aria-label=\"requests in use in the rate window, last minute\">"
    );
    let slot = f64::from(CHART_W) / f64::from(CHART_SLOTS);
    let start = CHART_SLOTS as usize - samples.len().min(CHART_SLOTS as usize);
    for (i, s) in samples
        .iter()
        .rev()
        .take(CHART_SLOTS as usize)
        .rev()
        .enumerate()
    {
        // At least one pixel, so that an idle second still shows as time passing.
        let h = if s.limit == 0 {
            0
        } else {
            (u64::from(CHART_H) * u64::from(s.in_use) / u64::from(s.limit))
                .clamp(1, u64::from(CHART_H))
        };
        let _ = write!(
            html,
            "<rect x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{h}\"><title>{} / {}</title></rect>",
            (start + i) as f64 * slot,
            u64::from(CHART_H) - h,
            slot - 1.0,
            s.in_use,
            s.limit,
        );
    }
    html.push_str("</svg>");
}

/// Escapes text for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_names_is_escaped() {
        assert_eq!(
            esc(r#"<script>"x" & 'y'</script>"#),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn chart_draws_one_bar_per_sample_scaled_to_the_limit() {
        let mut html = String::new();
        let samples = [
            BudgetSample {
                at: 1,
                in_use: 0,
                limit: 100,
            },
            BudgetSample {
                at: 2,
                in_use: 50,
                limit: 100,
            },
            BudgetSample {
                at: 3,
                in_use: 100,
                limit: 100,
            },
        ];
        chart(&mut html, &samples);
        assert_eq!(html.matches("<rect").count(), 3);
        assert!(html.contains("height=\"30\""));
        assert!(html.contains("y=\"0\" width"));
    }
}
