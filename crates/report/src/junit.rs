//! JUnit XML, which CI systems read: one testsuite, one testcase per gate and per
//! regression check, `<failure message=...>` on failing ones, `<skipped/>` on gates
//! without data and checks that could not compare.

use quantfarm_results::{GateStatus, RunResults};

use crate::compare::{Check, CheckStatus};

/// Escape for XML attribute values and text.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            // Characters XML 1.0 does not allow at all.
            c if (c as u32) < 0x20 => out.push('?'),
            _ => out.push(c),
        }
    }
    out
}

pub fn junit(run: &RunResults, checks: &[Check]) -> String {
    let mut cases = String::new();
    let (mut failures, mut skipped) = (0, 0);
    for g in &run.gates {
        cases += &format!(
            "  <testcase classname=\"gate.{}\" name=\"{}\">",
            xml(&g.kind),
            xml(&g.name)
        );
        match g.status {
            GateStatus::Pass => {}
            GateStatus::Fail => {
                failures += 1;
                cases += &format!(
                    "<failure message=\"{}\" type=\"gate\">{}</failure>",
                    xml(&g.message),
                    xml(&g.message)
                );
            }
            GateStatus::NoData => {
                skipped += 1;
                cases += &format!("<skipped message=\"{}\"/>", xml(&g.message));
            }
        }
        cases += "</testcase>\n";
    }
    for c in checks {
        cases += &format!(
            "  <testcase classname=\"regression.{}\" name=\"{}\">",
            c.kind,
            xml(&c.subject)
        );
        match c.status {
            CheckStatus::Pass => {}
            CheckStatus::Fail => {
                failures += 1;
                cases += &format!(
                    "<failure message=\"{}\" type=\"regression\">{}</failure>",
                    xml(&c.message),
                    xml(&c.message)
                );
            }
            CheckStatus::Skipped => {
                skipped += 1;
                cases += &format!("<skipped message=\"{}\"/>", xml(&c.message));
            }
        }
        cases += "</testcase>\n";
    }
    let tests = run.gates.len() + checks.len();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"quantfarm.{}\" \
         tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" \
         timestamp=\"{}\">\n  <properties><property name=\"run\" value=\"{}\"/>\
         <property name=\"scenario\" value=\"{}\"/></properties>\n{cases}</testsuite>\n",
        xml(&run.scenario),
        crate::text::iso_utc(run.created_unix).trim_end_matches('Z'),
        xml(&run.run_id),
        xml(&run.scenario),
    )
}
