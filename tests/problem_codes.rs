//! `docs/problem-codes.md` is rendered from the gateway's enum of codes: this test fails as
//! soon as the committed file and the code disagree, so the reference cannot go stale.

use std::path::Path;

use gateway::domain::codes::reference_markdown;

const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/problem-codes.md");
const REGENERATE: &str = "UPDATE_DOCS=1 cargo test --test problem_codes";

#[test]
fn the_problem_codes_reference_is_the_one_the_codes_render() {
    let rendered = reference_markdown();
    if std::env::var("UPDATE_DOCS").is_ok_and(|value| value == "1") {
        std::fs::write(REFERENCE, &rendered).expect("docs/problem-codes.md can be written");
        return;
    }
    let committed = std::fs::read_to_string(Path::new(REFERENCE)).unwrap_or_default();
    if committed != rendered {
        panic!(
            "docs/problem-codes.md is not what src/domain/codes.rs renders ({}); regenerate it with `{REGENERATE}`",
            first_difference(&committed, &rendered)
        );
    }
}

/// Where two texts first differ, for the failure message.
fn first_difference(committed: &str, rendered: &str) -> String {
    let mut committed_lines = committed.lines();
    let mut rendered_lines = rendered.lines();
    for number in 1.. {
        match (committed_lines.next(), rendered_lines.next()) {
            (None, None) => break,
            (was, now) if was != now => {
                return format!("line {number}: the file has {:?}, the codes render {:?}", was.unwrap_or("<end>"), now.unwrap_or("<end>"));
            }
            _ => {}
        }
    }
    "the texts differ only in their line endings".to_owned()
}
