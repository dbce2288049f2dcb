//! Termination notices: an employer's remittance line saying the employee left (employment
//! terminated = Y). The back office lists them by employer or obligor and marks each handled
//! once it has sent the withholding order on (or found the new employer).

use super::paging::{self, Page, PageRequest};
use super::{App, AppError, Caller};
use crate::domain::access::Action;
use crate::domain::codes::ProblemCode;
use crate::domain::{Fein, ObligorId};
use crate::storage::suspense::Worker;
use crate::storage::terminations::{Handled, NoticeFilter, TerminationNotice};

/// The name of the list of notices, in its page tokens.
pub const NOTICE_LIST: &str = "termination-notices";

/// Which notices to list; every filter given must hold.
#[derive(Clone, Debug, Default)]
pub struct NoticeQuery {
    /// `Some(false)`: only those not yet handled.
    pub handled: Option<bool>,
    pub employer_fein: Option<Fein>,
    pub obligor_id: Option<ObligorId>,
}

impl App {
    /// Termination notices, oldest first, a page at a time: every sender's for the back office;
    /// a vendor's or employer's, those of its own files, without the agency's obligor ids or
    /// the names of its clerks.
    pub async fn list_termination_notices(
        &self,
        caller: &Caller,
        query: NoticeQuery,
        page: PageRequest,
    ) -> Result<Page<TerminationNotice>, AppError> {
        let audit = self.authorize(caller, Action::ListTerminationNotices, "termination-notices").await?;
        let result = async {
            let after = page.id_cursor()?;
            let remitter = caller.principal.role.is_remitter();
            if remitter && query.obligor_id.is_some() {
                return Err(AppError::invalid("obligor_id", "a sender lists its notices by employer, not by obligor"));
            }
            let filter = NoticeFilter {
                handled: query.handled,
                employer_fein: query.employer_fein.map(|f| f.as_str().to_owned()),
                obligor_id: query.obligor_id.map(|o| o.to_string()),
                sender: remitter.then(|| caller.principal.name.clone()),
            };
            let fetched = self.store.termination_notices(&filter, after, page.size + 1).await?;
            let mut page = paging::page(NOTICE_LIST, page.size, fetched, |notice| notice.notice_id.to_string());
            if remitter {
                // Which obligor a line was identified to, and which clerk worked the notice, are
                // the agency's business; that it was handled, and when, is the sender's too.
                page.items.iter_mut().for_each(|notice| {
                    notice.obligor_id = None;
                    notice.handled_by = None;
                });
            }
            Ok(page)
        }
        .await;
        self.audited_read(audit, result).await
    }

    /// Marks a notice handled, once.
    pub async fn mark_notice_handled(&self, caller: &Caller, notice_id: i64) -> Result<TerminationNotice, AppError> {
        let audit = self.authorize(caller, Action::MarkTerminationNoticeHandled, format!("termination-notice:{notice_id}")).await?;
        let worker = Worker { name: caller.principal.name.clone(), at: self.clock.now_rfc3339() };
        let result = match self.store.mark_notice_handled(notice_id, &worker, &audit).await {
            Ok(Handled::Done(notice)) => Ok(*notice),
            Ok(Handled::Missing) => Err(AppError::NotFound(format!("termination notice {notice_id} does not exist"))),
            Ok(Handled::Already(notice)) => Err(AppError::precondition(
                ProblemCode::NoticeAlreadyHandled,
                format!("termination-notice:{notice_id}"),
                format!(
                    "termination notice {notice_id} was handled by {} at {}: nothing was changed",
                    notice.handled_by.as_deref().unwrap_or("?"),
                    notice.handled_at.as_deref().unwrap_or("?")
                ),
            )),
            Err(error) => Err(error.into()),
        };
        self.audited_write(audit, result).await
    }
}
