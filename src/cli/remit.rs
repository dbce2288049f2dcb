//! `gateway remit …`: submitting remittance files and reading their acknowledgments.

use std::process::ExitCode;

use anyhow::Context;

use super::client::{status_error, upload, upload_call, GatewayChannel};
use super::{FileFormat, RemitCommand};
use crate::grpc::proto::remittance_service_client::RemittanceServiceClient;
use crate::grpc::proto::{self, submit_remittance_request::Part};
use futures::StreamExt;
use super::output::{named, to_json};

/// The exit code of a refused file.
const REFUSED: u8 = 3;

pub async fn run(channel: GatewayChannel, json: bool, command: RemitCommand) -> anyhow::Result<ExitCode> {
    let mut client = RemittanceServiceClient::new(channel);
    match command {
        RemitCommand::Submit { verbose, format, batch_id, declared_lines, declared_total, file } => {
            let format = match format {
                FileFormat::Csv => proto::RemittanceFormat::Csv,
                FileFormat::Xml => proto::RemittanceFormat::Xml,
                FileFormat::Nacha => proto::RemittanceFormat::Nacha,
            };
            let header = proto::RemittanceHeader {
                format: format as i32,
                batch_id: batch_id.clone(),
                declared_line_count: declared_lines,
                declared_total,
            };
            let opened = tokio::fs::File::open(&file).await.with_context(|| format!("cannot open {}", file.display()))?;
            let size = opened.metadata().await.map(|m| m.len()).unwrap_or(0);
            let ack = submit_file(&mut client, header, opened, size).await?;
            print_acknowledgment(&mut client, json, verbose, String::new(), ack).await
        }
        RemitCommand::Show { batch_id, sender, verbose } => {
            let sender = sender.unwrap_or_default();
            let request = proto::GetRemittanceRequest { batch_id, sender: sender.clone() };
            let response = client.get_remittance(request).await.map_err(status_error)?.into_inner();
            let ack = response.acknowledgment.ok_or_else(|| anyhow::anyhow!("the server answered without an acknowledgment"))?;
            print_acknowledgment(&mut client, json, verbose, sender, ack).await
        }
        RemitCommand::List { sender, employer_fein, received_from, received_to, page_size, page_token } => {
            let request = proto::ListRemittancesRequest {
                page_size,
                page_token,
                sender: sender.unwrap_or_default(),
                employer_fein: employer_fein.unwrap_or_default(),
                received_from: received_from.unwrap_or_default(),
                received_to: received_to.unwrap_or_default(),
            };
            let response = client.list_remittances(request).await.map_err(status_error)?.into_inner();
            if json {
                println!("{}", serde_json::to_string_pretty(&to_json(&response)?)?);
            } else {
                println!(
                    "{:<16} {:<24} {:<6} {:<25} {:>7} {:>14} {:>8} {:>7} {:>9} {:>8}",
                    "sender", "batch id", "format", "received", "lines", "total", "applied", "by SSN", "suspense", "rejected"
                );
                for r in &response.remittances {
                    println!(
                        "{:<16} {:<24} {:<6} {:<25} {:>7} {:>14} {:>8} {:>7} {:>9} {:>8}",
                        r.sender,
                        r.batch_id,
                        named!(proto::RemittanceFormat, "REMITTANCE_FORMAT_", r.format),
                        super::output::instant(r.receive_time),
                        r.line_count,
                        r.total_amount,
                        r.applied,
                        r.applied_by_ssn,
                        r.suspense,
                        r.rejected
                    );
                }
                if !response.next_page_token.is_empty() {
                    println!("more: --page-token {}", response.next_page_token);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Sends one remittance file read from `file` (`size` bytes, for the progress line): the
/// header, the file's chunks, then its end. A failure to read the file cancels the upload,
/// so the server keeps nothing of it.
pub async fn submit_file(
    client: &mut RemittanceServiceClient<GatewayChannel>,
    header: proto::RemittanceHeader,
    file: impl tokio::io::AsyncRead + Send + Unpin + 'static,
    size: u64,
) -> anyhow::Result<proto::RemittanceAcknowledgment> {
    let first = proto::SubmitRemittanceRequest { part: Some(Part::Header(header)) };
    let upload = upload(
        file,
        size,
        |chunk| proto::SubmitRemittanceRequest { part: Some(Part::Chunk(chunk)) },
        |end| proto::SubmitRemittanceRequest { part: Some(Part::End(end)) },
    );
    let messages = futures::stream::iter([first]).chain(upload.messages);
    let response = upload_call(client.submit_remittance(messages), upload.failed).await?;
    response.acknowledgment.ok_or_else(|| anyhow::anyhow!("the server answered without an acknowledgment"))
}

async fn print_acknowledgment(
    client: &mut RemittanceServiceClient<GatewayChannel>,
    json: bool,
    verbose: bool,
    sender: String,
    ack: proto::RemittanceAcknowledgment,
) -> anyhow::Result<ExitCode> {
    let status = named!(proto::AcknowledgmentStatus, "ACKNOWLEDGMENT_STATUS_", ack.status);
    let code = if status == "REFUSED" { ExitCode::from(REFUSED) } else { ExitCode::SUCCESS };
    if json {
        // The acknowledgment with every line of an accepted file, from the stored outcomes.
        let mut lines = Vec::new();
        if status == "ACCEPTED" {
            let request = proto::StreamRemittanceLinesRequest { batch_id: ack.batch_id.clone(), sender, ..Default::default() };
            let mut stream = client.stream_remittance_lines(request).await.map_err(status_error)?.into_inner();
            while let Some(answer) = stream.next().await {
                if let Some(line) = answer.map_err(status_error)?.line {
                    lines.push(to_json(&line)?);
                }
            }
        }
        let mut full = to_json(&ack)?;
        full["lines"] = serde_json::Value::Array(lines);
        println!("{}", serde_json::to_string_pretty(&full)?);
        return Ok(code);
    }
    match status.as_str() {
        "REFUSED" => {
            println!("Batch {} REFUSED: nothing was recorded.", ack.batch_id);
            if let Some(problem) = &ack.file_problem {
                println!("  {} at {}: {}", problem.code, problem.position, problem.message);
            }
        }
        "DUPLICATE" => println!(
            "Batch {} is a DUPLICATE of batch {} (the same file was already accepted): nothing was recorded.",
            ack.batch_id,
            ack.duplicate_of.as_deref().unwrap_or("?")
        ),
        _ => {
            let again = if ack.replayed { " (sent before: this is the first acknowledgment again)" } else { "" };
            println!("Batch {} ACCEPTED{again}: {} lines, total {}.", ack.batch_id, ack.line_count, ack.total_amount);
            println!(
                "  applied {}, applied by SSN {}, suspense {}, rejected {}",
                ack.applied, ack.applied_by_ssn, ack.suspense, ack.rejected
            );
            if verbose {
                for line in &ack.lines {
                    for problem in &line.problems {
                        println!(
                            "  line {} ({}), {}: {} {} — {}",
                            line.line,
                            named!(proto::LineStatus, "LINE_STATUS_", line.status),
                            problem.field,
                            named!(proto::Severity, "SEVERITY_", problem.severity),
                            problem.code,
                            problem.message
                        );
                    }
                }
                if ack.lines_truncated {
                    println!("  … more lines have problems: `--json` lists every line.");
                }
            } else {
                print!("{}", grouped_problems(&ack));
            }
        }
    }
    Ok(code)
}

/// The problems of an acknowledgment grouped by code: count, severity and the first lines,
/// errors first, then warnings, then notices, the most frequent first.
pub fn grouped_problems(ack: &proto::RemittanceAcknowledgment) -> String {
    use crate::domain::problem_groups::{group_problems, ProblemGroup};
    use std::fmt::Write;
    let severities: Vec<Vec<String>> = ack
        .lines
        .iter()
        .map(|line| line.problems.iter().map(|problem| named!(proto::Severity, "SEVERITY_", problem.severity)).collect())
        .collect();
    let problems = ack.lines.iter().zip(&severities).flat_map(|(line, severities)| {
        line.problems.iter().zip(severities).map(|(problem, severity)| (line.line, problem.code.as_str(), severity.as_str()))
    });
    let groups = group_problems(problems);
    if groups.is_empty() {
        return String::new();
    }
    let at_least = if ack.lines_truncated { "at least " } else { "" };
    let mut text = String::from("  problems (`--verbose` lists every line):\n");
    for ProblemGroup { code, severity, count, first_lines: lines, .. } in groups {
        let shown: Vec<String> = lines.iter().map(u64::to_string).collect();
        let more = if count > lines.len() as u64 { ", …" } else { "" };
        let noun = if count == 1 { "line" } else { "lines" };
        let _ = writeln!(text, "    {code:<24} {severity:<8} {at_least}{count} {noun}: {}{more}", shown.join(", "));
    }
    text
}
