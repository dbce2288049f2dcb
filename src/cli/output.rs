//! What the client commands print: a summary for people, or with `--json` the server's
//! whole answer.

use std::fmt::Write;

use crate::grpc::proto;

/// An answer: as JSON with `--json`, else `text` for people.
pub fn print(json: bool, response: &impl prost::Name, text: String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&to_json(response)?)?);
    } else {
        print!("{text}");
    }
    Ok(())
}

/// A message in the proto's JSON mapping, with the proto's field names: enum values by their
/// names (`ACKNOWLEDGMENT_STATUS_ACCEPTED`), Timestamps as RFC 3339 text, 64-bit integers as
/// strings, every field present (defaults included), so scripts read what the proto says.
pub fn to_json<M: prost::Name>(message: &M) -> anyhow::Result<serde_json::Value> {
    use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
    use std::sync::OnceLock;
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    let pool = POOL.get_or_init(|| DescriptorPool::decode(proto::FILE_DESCRIPTOR_SET).expect("the compiled descriptor set"));
    let name = M::full_name();
    let descriptor = pool.get_message_by_name(&name).ok_or_else(|| anyhow::anyhow!("no descriptor for {name}"))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())?;
    let options = SerializeOptions::new().use_proto_field_name(true).skip_default_fields(false);
    Ok(dynamic.serialize_with_options(serde_json::value::Serializer, &options)?)
}

/// An enum value as people read it: the proto's name without the enum's prefix
/// (`named!(proto::LineStatus, "LINE_STATUS_", 1)` is `APPLIED`).
macro_rules! named {
    ($enum:ty, $prefix:literal, $value:expr) => {
        <$enum>::try_from($value)
            .map(|v| v.as_str_name().trim_start_matches($prefix).to_owned())
            .unwrap_or_else(|_| format!("unknown ({})", $value))
    };
}
pub(crate) use named;

/// An instant as people read it (RFC 3339, UTC, to the second); empty when unset.
pub fn instant(timestamp: Option<prost_types::Timestamp>) -> String {
    timestamp
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
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
            c.collection_id,
            c.amount,
            c.case_number,
            c.obligor_id,
            c.effective_date,
            named!(proto::CollectionStatus, "COLLECTION_STATUS_", c.status)
        ),
        None => "The server answered without a collection.\n".to_owned(),
    }
}

pub fn distribution(response: &proto::RunDistributionResponse) -> String {
    let Some(run_id) = &response.run_id else {
        return "Nothing to distribute: no collection is pending.\n".to_owned();
    };
    let mut text = format!(
        "Distribution run {}: {} collection(s) of {} obligor(s) in {} pool(s), {} allocation(s).\n",
        run_id, response.collections, response.obligors, response.pools, response.allocations,
    );
    let zero = response.corrections.is_empty() || response.corrections == "0.00";
    let moved = if zero { String::new() } else { format!(" + corrections {}", response.corrections) };
    text.push_str(&format!(
        "  total {}{moved} = current {} + arrears {} + unapplied {}\n",
        response.total, response.current, response.arrears, response.unapplied
    ));
    text
}
