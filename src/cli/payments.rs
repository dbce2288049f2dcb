//! `gateway payer …`, `gateway pay`, `gateway returns …`.

use std::fmt::Write;
use std::process::ExitCode;

use super::client::GatewayChannel;
use super::client::{file_upload, upload_call, status_error};
use super::output::{named, print, to_json};
use super::{BankAccountArgs, PayArgs, PayChannel, PayerCommand, ReturnsCommand};
use crate::grpc::proto::payment_service_client::PaymentServiceClient;
use crate::grpc::proto::{self};

fn bank_account(args: BankAccountArgs) -> Option<proto::BankAccountInput> {
    let account_type = match args.account_type.trim().to_ascii_uppercase().as_str() {
        "CHECKING" => proto::AccountType::Checking,
        "SAVINGS" => proto::AccountType::Savings,
        _ => proto::AccountType::Unspecified, // refused by the server, naming the field
    };
    Some(proto::BankAccountInput { routing_number: args.routing_number, account_number: args.account_number, account_type: account_type as i32 })
}

fn payer_text(payer: &proto::Payer) -> String {
    let mut text = format!(
        "Payer {}: {}, {}\n  SSN {}, telephone {}, e-mail {}, case {}\n",
        payer.payer_id,
        payer.name,
        payer.address,
        format_args!("***-**-{}", payer.ssn_last4),
        payer.telephone,
        payer.email,
        payer.case_number
    );
    if let Some(status) = &payer.bank_account {
        let account = status.bank_account.clone().unwrap_or_default();
        let state = named!(proto::AccountState, "ACCOUNT_STATE_", status.state);
        let _ = write!(
            text,
            "  bank account {} ****{} (routing {}), added {}: {state}",
            named!(proto::AccountType, "ACCOUNT_TYPE_", account.account_type),
            account.account_number_last4,
            account.routing_number,
            status.added_on
        );
        match state.as_str() {
            "PENDING" => {
                let _ = write!(text, " — can pay from {}", status.usable_from.as_deref().unwrap_or("?"));
            }
            "UNUSABLE" => {
                let _ = write!(text, " — returned {}: replace it", status.return_code.as_deref().unwrap_or("?"));
            }
            _ => {}
        }
        text.push('\n');
    }
    text
}

pub async fn payer(channel: GatewayChannel, json: bool, command: PayerCommand) -> anyhow::Result<ExitCode> {
    let mut client = PaymentServiceClient::new(channel);
    // Each command answers its own message; each carries the payer.
    let (payer, answer) = match command {
        PayerCommand::Register { name, address, ssn, telephone, email, case_number, account } => {
            let request =
                proto::RegisterPayerRequest { name, address, ssn, telephone, case_number, email, bank_account: bank_account(account) };
            let response = client.register_payer(request).await.map_err(status_error)?.into_inner();
            (response.payer.clone(), to_json(&response)?)
        }
        PayerCommand::Show { payer_id } => {
            let response = client.get_payer(proto::GetPayerRequest { payer_id }).await.map_err(status_error)?.into_inner();
            (response.payer.clone(), to_json(&response)?)
        }
        PayerCommand::ReplaceAccount { payer_id, account } => {
            let request = proto::ReplaceBankAccountRequest { payer_id, bank_account: bank_account(account) };
            let response = client.replace_bank_account(request).await.map_err(status_error)?.into_inner();
            (response.payer.clone(), to_json(&response)?)
        }
        PayerCommand::ConfirmAccount { payer_id } => {
            let response = client.confirm_bank_account(proto::ConfirmBankAccountRequest { payer_id }).await.map_err(status_error)?.into_inner();
            (response.payer.clone(), to_json(&response)?)
        }
        PayerCommand::ReturnPrenote { payer_id, code } => {
            let request = proto::ReturnPrenoteRequest { payer_id, return_code: code };
            let response = client.return_prenote(request).await.map_err(status_error)?.into_inner();
            (response.payer.clone(), to_json(&response)?)
        }
    };
    let payer = payer.ok_or_else(|| anyhow::anyhow!("the server answered without the payer"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", payer_text(&payer));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn pay(channel: GatewayChannel, json: bool, args: PayArgs) -> anyhow::Result<ExitCode> {
    let idempotency_key = args.idempotency_key.unwrap_or_else(|| {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).expect("the operating system provides random bytes");
        hex::encode(random)
    });
    let request = proto::SubmitPaymentRequest {
        payer_id: args.payer_id,
        case_number: args.case_number,
        amount: args.amount,
        channel: match args.channel {
            PayChannel::Web => proto::PaymentChannel::Web,
            PayChannel::Phone => proto::PaymentChannel::Phone,
        } as i32,
        idempotency_key: idempotency_key.clone(),
    };
    let response = PaymentServiceClient::new(channel).submit_payment(request).await.map_err(status_error)?.into_inner();
    let receipt = response.receipt.clone().unwrap_or_default();
    let status = named!(proto::PaymentStatus, "PAYMENT_STATUS_", receipt.status);
    let mut text = format!("Payment {} {status} (idempotency key {idempotency_key}).\n", receipt.payment_id);
    for notice in &receipt.notices {
        let _ = writeln!(text, "  {notice}");
    }
    print(json, &response, text)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn returns(channel: GatewayChannel, json: bool, command: ReturnsCommand) -> anyhow::Result<ExitCode> {
    let mut client = PaymentServiceClient::new(channel);
    match command {
        ReturnsCommand::Record { payment_id, code } => {
            let result = client
                .record_return(proto::RecordReturnRequest { payment_id, return_code: code })
                .await
                .map_err(status_error)?
                .into_inner();
            let outcome = named!(proto::ReturnOutcome, "RETURN_OUTCOME_", result.outcome);
            let mut text = format!("Payment {} returned ({}): {outcome}.\n", result.payment_id, result.return_code);
            for entry in &result.entries {
                let bucket = named!(proto::Bucket, "BUCKET_", entry.bucket);
                let _ = writeln!(text, "  {} {bucket} {} {}", entry.order_id, entry.month, entry.amount);
            }
            if result.account_unusable {
                text.push_str("  The bank account is unusable until it is replaced.\n");
            }
            print(json, &result, text)?;
        }
        ReturnsCommand::Import { file } => {
            use proto::import_returns_request::Part;
            let upload = file_upload(
                &file,
                |chunk| proto::ImportReturnsRequest { part: Some(Part::Chunk(chunk)) },
                |end| proto::ImportReturnsRequest { part: Some(Part::End(end)) },
            )
            .await?;
            let response = upload_call(client.import_returns(upload.messages), upload.failed).await?;
            let mut text = format!("{} return(s) in the file:\n", response.returns.len());
            for r in &response.returns {
                let _ = writeln!(
                    text,
                    "  record {}: {} for trace {} (payment {}): {}",
                    r.record,
                    r.return_code,
                    r.original_trace,
                    r.payment_id.map_or_else(|| "none".to_owned(), |id| id.to_string()),
                    named!(proto::ReturnOutcome, "RETURN_OUTCOME_", r.outcome)
                );
            }
            print(json, &response, text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
