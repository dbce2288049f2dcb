//! Finding an obligor: the back office asks by case number, by name or by the SSN's last
//! four digits, and gets the obligor with its orders.

use super::paging::{self, Page, PageRequest};
use super::{App, AppError, Caller};
use crate::domain::access::Action;
use crate::domain::{CaseNumber, ObligorId};
use crate::storage::obligors::{ObligorFilter, ObligorSummary};

/// The paging tokens' name for the obligor search.
pub const OBLIGOR_LIST: &str = "obligors";

/// The longest last name searched for.
const MAX_NAME_CHARS: usize = 60;

/// What a clerk searches by; at least one is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObligorQuery(ObligorFilter);

impl ObligorQuery {
    /// A search from what the clerk typed (empty fields are not searched by).
    pub fn new(case_number: &str, last_name: &str, ssn_last4: &str) -> Result<ObligorQuery, AppError> {
        let case_number = match case_number.trim() {
            "" => Ok(None),
            text => CaseNumber::parse(text).map(Some).map_err(|_| AppError::invalid("case_number", "8 digits")),
        };
        let last_name = match last_name.trim() {
            "" => Ok(None),
            text if text.chars().count() <= MAX_NAME_CHARS && !text.chars().any(char::is_control) => Ok(Some(text.to_owned())),
            _ => Err(AppError::invalid("last_name", format!("at most {MAX_NAME_CHARS} printable characters"))),
        };
        let ssn_last4 = match ssn_last4.trim() {
            "" => Ok(None),
            text if text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(text.to_owned())),
            _ => Err(AppError::invalid("ssn_last4", "the last 4 digits of the SSN")),
        };
        let (case_number, last_name_prefix, ssn_last4) = match (case_number, last_name, ssn_last4) {
            (Ok(case), Ok(name), Ok(last4)) => (case, name, last4),
            (case, name, last4) => return Err(AppError::every_field([case.err(), name.err(), last4.err()])),
        };
        if case_number.is_none() && last_name_prefix.is_none() && ssn_last4.is_none() {
            return Err(AppError::invalid("case_number", "search by a case number, a last name or the SSN's last 4 digits"));
        }
        Ok(ObligorQuery(ObligorFilter { case_number, last_name_prefix, ssn_last4 }))
    }
}

impl App {
    /// Obligors matching the query, by obligor id, a page at a time, each with its orders.
    pub async fn search_obligors(&self, caller: &Caller, query: ObligorQuery, page: PageRequest) -> Result<Page<ObligorSummary>, AppError> {
        let audit = self.authorize(caller, Action::SearchObligors, "obligors").await?;
        let result = async {
            let after = page
                .after
                .as_deref()
                .map(|cursor| ObligorId::parse(cursor).map_err(|_| AppError::invalid("page_token", "not a page token of this list")))
                .transpose()?;
            let fetched = self.store.find_obligors(&query.0, after.as_ref(), page.size + 1).await?;
            Ok(paging::page(OBLIGOR_LIST, page.size, fetched, |obligor| obligor.obligor_id.to_string()))
        }
        .await;
        self.audited_read(audit, result).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_needs_one_criterion_and_each_is_checked() {
        assert!(ObligorQuery::new("", " ", "").is_err());
        let query = ObligorQuery::new("1234-5678", " Smi ", "6789").unwrap();
        assert_eq!(query.0.case_number.as_ref().map(CaseNumber::as_str), Some("12345678"));
        assert_eq!(query.0.last_name_prefix.as_deref(), Some("Smi"));
        match ObligorQuery::new("123", "", "67x9") {
            Err(AppError::InvalidFields(violations)) => {
                let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
                assert_eq!(fields, ["case_number", "ssn_last4"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
