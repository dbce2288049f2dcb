//! `gateway review …`: the back office records parents' requests to review an order.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use super::client::{status_error, GatewayChannel};
use super::output::{named, print};
use crate::grpc::proto::order_service_client::OrderServiceClient;
use crate::grpc::proto;

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Record a parent's request to review an order. Within 3 years of the last review (or of
    /// the order's start) it needs --reason; the refusal says from which day it does not.
    Request {
        order_id: String,
        /// The day the parent made the request (YYYY-MM-DD).
        #[arg(long)]
        date: String,
        #[arg(long, value_enum)]
        channel: Channel,
        /// The reason or change of circumstance the parent states.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List accepted requests, oldest first.
    List {
        /// Only this order's requests.
        #[arg(long)]
        order: Option<String>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Channel {
    Mail,
    Fax,
}

fn review_line(r: &proto::OrderReview) -> String {
    let reason = if r.reason.is_empty() { "(no reason needed)" } else { r.reason.as_str() };
    format!(
        "{:>6}  {:<12} {:<9} {}  {:<4}  {reason}  (recorded by {})",
        r.review_id,
        r.order_id,
        r.case_number,
        r.request_date,
        named!(proto::ReviewChannel, "REVIEW_CHANNEL_", r.channel),
        r.recorded_by
    )
}

pub async fn run(channel: GatewayChannel, json: bool, command: ReviewCommand) -> anyhow::Result<ExitCode> {
    let mut client = OrderServiceClient::new(channel);
    match command {
        ReviewCommand::Request { order_id, date, channel, reason } => {
            let channel = match channel {
                Channel::Mail => proto::ReviewChannel::Mail,
                Channel::Fax => proto::ReviewChannel::Fax,
            };
            let request = proto::RequestOrderReviewRequest { order_id, request_date: date, channel: channel as i32, reason };
            let response = client.request_order_review(request).await.map_err(status_error)?.into_inner();
            let text = response.review.as_ref().map(|r| format!("Review request recorded:\n{}\n", review_line(r))).unwrap_or_default();
            print(json, &response, text)?;
        }
        ReviewCommand::List { order, page_size, page_token } => {
            let request = proto::ListOrderReviewsRequest { page_size, page_token, order_id: order.unwrap_or_default() };
            let response = client.list_order_reviews(request).await.map_err(status_error)?.into_inner();
            let mut text = String::new();
            if response.reviews.is_empty() {
                text.push_str("No review requests.\n");
            }
            for review in &response.reviews {
                let _ = writeln!(text, "{}", review_line(review));
            }
            if !response.next_page_token.is_empty() {
                let _ = writeln!(text, "More: --page-token {}", response.next_page_token);
            }
            print(json, &response, text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
