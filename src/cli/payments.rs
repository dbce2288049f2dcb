//! `gateway payer …`, `gateway pay`, `gateway returns …`.

use std::fmt::Write;
use std::process::ExitCode;

use super::client::GatewayChannel;
use super::client::{file_upload, upload_call, status_error};
use super::output::print;
use super::{BankAccountArgs, PayArgs, PayChannel, PayerCommand, ReturnsCommand};
use crate::grpc::proto::payment_service_client::PaymentServiceClient;
use crate::grpc::proto::{self};

fn bank_account(args: BankAccountArgs) -> Option<proto::BankAccount> {
    Some(proto::BankAccount { routing_number: args.routing_number, account_number: args.account_number, account_type: args.account_type })
}

fn payer_text(payer: &proto::Payer) -> String {
    let mut text = format!(
        "Payer {}: {}, {}\n  SSN {}, telephone {}, e-mail {}, case {}\n",
        payer.payer_id, payer.name, payer.address, payer.ssn, payer.telephone, payer.email, payer.case_number
    );
    if let Some(state) = &payer.bank_account {
        let account = state.bank_account.clone().unwrap_or_default();
        let _ = write!(
            text,
            "  bank account {} {} (routing {}), added {}: {}",
            account.account_type, account.account_number, account.routing_number, state.added_on, state.state
        );
        match state.state.as_str() {
            "PENDING" => {
                let _ = write!(text, " — can pay from {}", state.usable_from);
            }
            "UNUSABLE" => {
                let _ = write!(text, " — returned {}: replace it", state.return_code);
            }
            _ => {}
        }
        text.push('\n');
    }
    text
}

pub async fn payer(channel: GatewayChannel, json: bool, command: PayerCommand) -> anyhow::Result<ExitCode> {
    let mut client = PaymentServiceClient::new(channel);
    let payer = match command {
        PayerCommand::Register { name, address, ssn, telephone, email, case_number, account } => {
            let request =
                proto::RegisterPayerRequest { name, address, ssn, telephone, case_number, email, bank_account: bank_account(account) };
            client.register_payer(request).await
        }
        PayerCommand::Show { payer_id } => client.get_payer(proto::GetPayerRequest { payer_id }).await,
        PayerCommand::ReplaceAccount { payer_id, account } => {
            client.replace_bank_account(proto::BankAccountRequest { payer_id, bank_account: bank_account(account) }).await
        }
        PayerCommand::ConfirmAccount { payer_id } => client.confirm_bank_account(proto::GetPayerRequest { payer_id }).await,
        PayerCommand::ReturnPrenote { payer_id, code } => {
            client.return_prenote(proto::ReturnPrenoteRequest { payer_id, return_code: code }).await
        }
    }
    .map_err(status_error)?
    .into_inner();
    print(json, &payer, payer_text(&payer))?;
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
    let receipt = PaymentServiceClient::new(channel).submit_payment(request).await.map_err(status_error)?.into_inner();
    let mut text = format!("Payment {} {} (idempotency key {idempotency_key}).\n", receipt.payment_id, receipt.status);
    for notice in &receipt.notices {
        let _ = writeln!(text, "  {notice}");
    }
    print(json, &receipt, text)?;
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
            let mut text = format!("Payment {} returned ({}): {}.\n", result.payment_id, result.return_code, result.outcome);
            for entry in &result.entries {
                let _ = writeln!(text, "  {} {} {} {}", entry.order_id, entry.bucket, entry.month, entry.amount);
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
                    r.record, r.return_code, r.original_trace, r.payment_id, r.outcome
                );
            }
            print(json, &response, text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
