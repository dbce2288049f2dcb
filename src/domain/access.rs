//! Who may do what: the roles API keys carry, the actions the gateway offers, and the one
//! table that says which role may take which action.
//!
//! The table is the whole policy (45 CFR 307.13: access limited to those permitted). Tenant
//! scoping — a vendor sees only its own files, an employer only its own FEINs — is applied by
//! the use cases on top of it, and answers NOT_FOUND, so a tenant cannot learn that another
//! tenant's object exists.

use std::fmt;

use super::ids::Fein;

/// What a key may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A payroll vendor: submits remittance files and reads back its own.
    Vendor,
    /// An employer's HR system: the same, for its own FEIN(s) only.
    Employer,
    /// The agency's payment web site and phone line: payers and their payments.
    PaymentSite,
    /// The agency's staff: registry, distribution, suspense, returns, exports, audit.
    BackOffice,
    /// Security administration: API keys, and the audit trail.
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Vendor, Role::Employer, Role::PaymentSite, Role::BackOffice, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Vendor => "vendor",
            Role::Employer => "employer",
            Role::PaymentSite => "payment-site",
            Role::BackOffice => "back-office",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text.trim())
    }

    /// Whether this role sends remittance files, and so has a sender namespace of its own.
    pub fn is_remitter(self) -> bool {
        matches!(self, Role::Vendor | Role::Employer)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every action a caller can ask for: one per RPC of the API, plus server reflection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    ImportRegistry,
    AddCollection,
    RunDistribution,
    SubmitRemittance,
    GetRemittance,
    StreamRemittanceLines,
    ListRemittances,
    RegisterPayer,
    GetPayer,
    AddBankAccount,
    ReplaceBankAccount,
    ConfirmBankAccount,
    ReturnPrenote,
    SubmitPayment,
    RecordReturn,
    ImportReturns,
    ExportAllocations,
    ExportBalances,
    ExportSuspense,
    ExportAudit,
    CreateApiKey,
    ListApiKeys,
    RevokeApiKey,
    CalculateWithholding,
    CalculatePayrollWithholding,
    ListSuspenseItems,
    GetSuspenseItem,
    ResolveSuspenseItem,
    ReturnSuspenseItem,
    ListTerminationNotices,
    MarkTerminationNoticeHandled,
    RequestOrderReview,
    ListOrderReviews,
    ExportReport,
    ListProjectedEnds,
    RecordOrderEnd,
    WithdrawOrderEnd,
    SearchObligors,
    ExplainCollection,
    ExplainOrder,
    ListUnappliedCredit,
    RefundCredit,
    ApplyCredit,
    VerifyLedger,
    /// Describing the API (gRPC server reflection): any authenticated caller.
    Reflection,
}

use Role::{Admin, BackOffice, Employer, PaymentSite, Vendor};

impl Action {
    pub const ALL: [Action; 45] = [
        Action::ImportRegistry,
        Action::AddCollection,
        Action::RunDistribution,
        Action::SubmitRemittance,
        Action::GetRemittance,
        Action::StreamRemittanceLines,
        Action::ListRemittances,
        Action::RegisterPayer,
        Action::GetPayer,
        Action::AddBankAccount,
        Action::ReplaceBankAccount,
        Action::ConfirmBankAccount,
        Action::ReturnPrenote,
        Action::SubmitPayment,
        Action::RecordReturn,
        Action::ImportReturns,
        Action::ExportAllocations,
        Action::ExportBalances,
        Action::ExportSuspense,
        Action::ExportAudit,
        Action::CreateApiKey,
        Action::ListApiKeys,
        Action::RevokeApiKey,
        Action::CalculateWithholding,
        Action::CalculatePayrollWithholding,
        Action::ListSuspenseItems,
        Action::GetSuspenseItem,
        Action::ResolveSuspenseItem,
        Action::ReturnSuspenseItem,
        Action::ListTerminationNotices,
        Action::MarkTerminationNoticeHandled,
        Action::RequestOrderReview,
        Action::ListOrderReviews,
        Action::ExportReport,
        Action::ListProjectedEnds,
        Action::RecordOrderEnd,
        Action::WithdrawOrderEnd,
        Action::SearchObligors,
        Action::ExplainCollection,
        Action::ExplainOrder,
        Action::ListUnappliedCredit,
        Action::RefundCredit,
        Action::ApplyCredit,
        Action::VerifyLedger,
        Action::Reflection,
    ];

    /// The roles allowed to take this action: the policy, in one table.
    pub fn allowed_roles(self) -> &'static [Role] {
        match self {
            Action::SubmitRemittance | Action::CalculateWithholding | Action::CalculatePayrollWithholding => &[Vendor, Employer],
            // Senders read their own files (and the termination notices in them); the back
            // office reads every sender's.
            Action::GetRemittance | Action::StreamRemittanceLines | Action::ListRemittances | Action::ListTerminationNotices => {
                &[Vendor, Employer, BackOffice]
            }
            Action::RegisterPayer | Action::AddBankAccount | Action::ReplaceBankAccount | Action::SubmitPayment => &[PaymentSite],
            // The back office reads a payer while working a return or a prenote.
            Action::GetPayer => &[PaymentSite, BackOffice],
            Action::ImportRegistry
            | Action::AddCollection
            | Action::RunDistribution
            | Action::ConfirmBankAccount
            | Action::ReturnPrenote
            | Action::RecordReturn
            | Action::ImportReturns
            | Action::ExportAllocations
            | Action::ExportBalances
            | Action::ExportSuspense
            | Action::ListSuspenseItems
            | Action::GetSuspenseItem
            | Action::ResolveSuspenseItem
            | Action::ReturnSuspenseItem
            | Action::MarkTerminationNoticeHandled
            | Action::RequestOrderReview
            | Action::ListOrderReviews
            | Action::ExportReport
            | Action::ListProjectedEnds
            | Action::RecordOrderEnd
            | Action::WithdrawOrderEnd
            | Action::SearchObligors
            | Action::ExplainCollection
            | Action::ExplainOrder
            | Action::ListUnappliedCredit
            | Action::RefundCredit
            | Action::ApplyCredit => &[BackOffice],
            // Reviewing the audit trail is the security administrator's and the back office's.
            Action::ExportAudit => &[BackOffice, Admin],
            // So does checking the ledger's integrity (also on the database, by `gateway admin verify`).
            Action::VerifyLedger => &[BackOffice, Admin],
            Action::CreateApiKey | Action::ListApiKeys | Action::RevokeApiKey => &[Admin],
            Action::Reflection => &Role::ALL,
        }
    }

    pub fn allows(self, role: Role) -> bool {
        self.allowed_roles().contains(&role)
    }

    /// The action's name, as the audit trail shows it whichever way it was called (gRPC,
    /// the local admin commands): `SubmitRemittance`. Which RPC performs it is the
    /// transport's business.
    pub fn name(self) -> &'static str {
        match self {
            Action::ImportRegistry => "ImportRegistry",
            Action::AddCollection => "AddCollection",
            Action::RunDistribution => "RunDistribution",
            Action::SubmitRemittance => "SubmitRemittance",
            Action::GetRemittance => "GetRemittance",
            Action::StreamRemittanceLines => "StreamRemittanceLines",
            Action::ListRemittances => "ListRemittances",
            Action::RegisterPayer => "RegisterPayer",
            Action::GetPayer => "GetPayer",
            Action::AddBankAccount => "AddBankAccount",
            Action::ReplaceBankAccount => "ReplaceBankAccount",
            Action::ConfirmBankAccount => "ConfirmBankAccount",
            Action::ReturnPrenote => "ReturnPrenote",
            Action::SubmitPayment => "SubmitPayment",
            Action::RecordReturn => "RecordReturn",
            Action::ImportReturns => "ImportReturns",
            Action::ExportAllocations => "ExportAllocations",
            Action::ExportBalances => "ExportBalances",
            Action::ExportSuspense => "ExportSuspense",
            Action::ExportAudit => "ExportAudit",
            Action::CreateApiKey => "CreateApiKey",
            Action::ListApiKeys => "ListApiKeys",
            Action::RevokeApiKey => "RevokeApiKey",
            Action::CalculateWithholding => "CalculateWithholding",
            Action::CalculatePayrollWithholding => "CalculatePayrollWithholding",
            Action::ListSuspenseItems => "ListSuspenseItems",
            Action::GetSuspenseItem => "GetSuspenseItem",
            Action::ResolveSuspenseItem => "ResolveSuspenseItem",
            Action::ReturnSuspenseItem => "ReturnSuspenseItem",
            Action::ListTerminationNotices => "ListTerminationNotices",
            Action::MarkTerminationNoticeHandled => "MarkTerminationNoticeHandled",
            Action::RequestOrderReview => "RequestOrderReview",
            Action::ListOrderReviews => "ListOrderReviews",
            Action::ExportReport => "ExportReport",
            Action::ListProjectedEnds => "ListProjectedEnds",
            Action::RecordOrderEnd => "RecordOrderEnd",
            Action::WithdrawOrderEnd => "WithdrawOrderEnd",
            Action::SearchObligors => "SearchObligors",
            Action::ExplainCollection => "ExplainCollection",
            Action::ExplainOrder => "ExplainOrder",
            Action::ListUnappliedCredit => "ListUnappliedCredit",
            Action::RefundCredit => "RefundCredit",
            Action::ApplyCredit => "ApplyCredit",
            Action::VerifyLedger => "VerifyLedger",
            Action::Reflection => "Reflection",
        }
    }
}

/// An authenticated caller: the key it presented and what that key may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    /// The tenant's name: for vendors and employers, the sender of their files.
    pub name: String,
    pub role: Role,
    /// For an employer: the FEINs it may remit for and read.
    pub feins: Vec<Fein>,
}

impl Principal {
    pub fn may(&self, action: Action) -> bool {
        action.allows(self.role)
    }

    /// The FEINs this caller's remittance lines are limited to: `None` for a vendor, which
    /// remits for many employers.
    pub fn employer_feins(&self) -> Option<&[Fein]> {
        (self.role == Role::Employer).then_some(self.feins.as_slice())
    }
}

/// A key's name: what the audit trail shows and, for remitters, the sender namespace.
pub fn check_key_name(name: &str) -> Result<&str, &'static str> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err("a key's name is 1 to 64 characters");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err("a key's name uses letters, digits, `-`, `_` and `.` only");
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_has_exactly_its_actions() {
        let allowed = |role: Role| -> Vec<Action> { Action::ALL.into_iter().filter(|a| a.allows(role)).collect() };
        use Action::*;
        assert_eq!(
            allowed(Vendor),
            vec![
                SubmitRemittance,
                GetRemittance,
                StreamRemittanceLines,
                ListRemittances,
                CalculateWithholding,
                CalculatePayrollWithholding,
                ListTerminationNotices,
                Reflection
            ]
        );
        assert_eq!(allowed(Employer), allowed(Vendor));
        assert_eq!(allowed(PaymentSite), vec![RegisterPayer, GetPayer, AddBankAccount, ReplaceBankAccount, SubmitPayment, Reflection]);
        assert_eq!(
            allowed(BackOffice),
            vec![
                ImportRegistry,
                AddCollection,
                RunDistribution,
                GetRemittance,
                StreamRemittanceLines,
                ListRemittances,
                GetPayer,
                ConfirmBankAccount,
                ReturnPrenote,
                RecordReturn,
                ImportReturns,
                ExportAllocations,
                ExportBalances,
                ExportSuspense,
                ExportAudit,
                ListSuspenseItems,
                GetSuspenseItem,
                ResolveSuspenseItem,
                ReturnSuspenseItem,
                ListTerminationNotices,
                MarkTerminationNoticeHandled,
                RequestOrderReview,
                ListOrderReviews,
                ExportReport,
                ListProjectedEnds,
                RecordOrderEnd,
                WithdrawOrderEnd,
                SearchObligors,
                ExplainCollection,
                ExplainOrder,
                ListUnappliedCredit,
                RefundCredit,
                ApplyCredit,
                VerifyLedger,
                Reflection
            ]
        );
        assert_eq!(allowed(Admin), vec![ExportAudit, CreateApiKey, ListApiKeys, RevokeApiKey, VerifyLedger, Reflection]);
    }

    #[test]
    fn no_role_moves_money_and_manages_keys() {
        for role in Role::ALL {
            let moves_money = [Action::SubmitPayment, Action::AddCollection, Action::RunDistribution, Action::SubmitRemittance]
                .iter()
                .any(|a| a.allows(role));
            assert!(!(moves_money && Action::CreateApiKey.allows(role)), "{role} both moves money and makes keys");
        }
    }

    #[test]
    fn roles_and_names_parse() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(check_key_name(" acme-payroll "), Ok("acme-payroll"));
        assert!(check_key_name("").is_err());
        assert!(check_key_name("a b").is_err());
        assert!(check_key_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn rpc_names_are_unique() {
        let mut names: Vec<_> = Action::ALL.iter().map(|a| a.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Action::ALL.len());
    }
}
