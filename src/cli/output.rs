//! What the client commands print: a summary for people, or with `--json` the server's
//! whole answer.

use std::fmt::Write;

use crate::grpc::proto;

pub fn print(json: bool, response: &impl serde::Serialize, text: String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(response)?);
    } else {
        print!("{text}");
    }
    Ok(())
}

pub fn registry_import(response: &proto::ImportRegistryResponse) -> String {
    let mut text = String::new();
    if response.applied {
        let _ = writeln!(
            text,
            "Registry imported: {} rows ({} added, {} updated, {} unchanged).",
            response.rows, response.added, response.updated, response.unchanged
        );
    } else {
        let _ = writeln!(text, "Registry refused: nothing was changed. {} problem(s):", response.problems.len());
        for problem in &response.problems {
            let field = if problem.field.is_empty() { String::new() } else { format!(", {}", problem.field) };
            let _ = writeln!(text, "  line {}{field}: {} — {}", problem.line, problem.code, problem.message);
        }
    }
    text
}

pub fn collection(response: &proto::AddCollectionResponse) -> String {
    match &response.collection {
        Some(c) => format!(
            "Collection {} recorded: {} for case {} (obligor {}), effective {}, {}.\n",
            c.collection_id, c.amount, c.case_number, c.obligor_id, c.effective_date, c.status
        ),
        None => "The server answered without a collection.\n".to_owned(),
    }
}

pub fn distribution(response: &proto::RunDistributionResponse) -> String {
    if response.run_id.is_empty() {
        return "Nothing to distribute: no collection is pending.\n".to_owned();
    }
    format!(
        "Distribution run {}: {} collection(s) of {} obligor(s) in {} pool(s), {} allocation(s).\n  \
         total {} = current {} + arrears {} + unapplied {}\n",
        response.run_id,
        response.collections,
        response.obligors,
        response.pools,
        response.allocations,
        response.total,
        response.current,
        response.arrears,
        response.unapplied
    )
}
