//! Every code the gateway can send, in one enum: the problems of a remittance line, the
//! refusals of a whole file, the problems of a case registry file, and the reasons of the
//! API's errors (`google.rpc.ErrorInfo.reason`).
//!
//! On the wire a code stays a string (clients must treat the set as open, as they do
//! `ErrorInfo.reason`), but inside the gateway every code is built from [`ProblemCode`], so
//! the reference `docs/problem-codes.md`, rendered by [`reference_markdown`], lists every code
//! the gateway can emit and nothing else. Codes never change meaning once published.

use std::fmt::{self, Write as _};

/// Whether a line problem stops the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The line is REJECTED: nothing of it is recorded.
    Error,
    /// The line is accepted; the sender should fix its records.
    Warning,
    /// For information (a termination notice, a prenote).
    Notice,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Error, Severity::Warning, Severity::Notice];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
            Severity::Notice => "NOTICE",
        }
    }

    /// What the severity means, for people.
    pub fn description(self) -> &'static str {
        match self {
            Severity::Error => "the line is rejected: nothing of it is recorded",
            Severity::Warning => "the line is accepted; the sender should fix its records",
            Severity::Notice => "for information only",
        }
    }
}

/// Where a code is reported. A code may be reported in several places with one meaning (a
/// malformed CSV header refuses a remittance and a registry file alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CodeKind {
    /// A problem of one remittance line, with a [`Severity`].
    LineProblem,
    /// Why a whole file (remittance or ACH returns) is refused.
    FileRefusal,
    /// A problem of a case registry file, which keeps the whole file from being applied.
    RegistryProblem,
    /// The reason of an API error.
    ApiError,
}

impl CodeKind {
    pub const ALL: [CodeKind; 4] = [CodeKind::LineProblem, CodeKind::FileRefusal, CodeKind::RegistryProblem, CodeKind::ApiError];

    /// The reference's heading for the kind.
    pub fn title(self) -> &'static str {
        match self {
            CodeKind::LineProblem => "Line problems",
            CodeKind::FileRefusal => "File refusals",
            CodeKind::RegistryProblem => "Registry problems",
            CodeKind::ApiError => "API error reasons",
        }
    }

    /// Where a client finds codes of the kind, for the reference.
    pub fn where_reported(self) -> &'static str {
        match self {
            CodeKind::LineProblem => {
                "The problems of one remittance line: `LineProblem.code` in `RemittanceAcknowledgment.lines` and in \
                 `StreamRemittanceLines`, each with its severity. Money held in suspense keeps the problem that held it as its \
                 `reason` (`ExportSuspense`)."
            }
            CodeKind::FileRefusal => {
                "Why a whole file is refused: `FileProblem.code` in a REFUSED `RemittanceAcknowledgment`. An ACH return file \
                 that `ImportReturns` refuses names its code at the start of the INVALID_ARGUMENT message."
            }
            CodeKind::RegistryProblem => {
                "The problems of a case registry file: `RegistryProblem.code` in `ImportRegistryResponse.problems`, each with \
                 its line and column. A file with any problem is not applied."
            }
            CodeKind::ApiError => {
                "Why a call failed: `google.rpc.ErrorInfo.reason` (domain `gateway.fspc`) in the details of every error \
                 status, next to the gRPC status code."
            }
        }
    }
}

/// Declares [`ProblemCode`] from one table, so that a code's string, kinds, severity and
/// description are written once, side by side, and [`ProblemCode::ALL`] cannot miss one.
///
/// Each entry is `/// description` (one line: the reference prints it as it is), then
/// `Variant = "STRING", Kind | Kind(Severity) …;` where only `LineProblem` takes a severity.
macro_rules! problem_codes {
    (@severity) => { None };
    (@severity $severity:ident) => { Some(Severity::$severity) };
    ($(
        #[doc = $description:literal]
        $variant:ident = $code:literal, $($kind:ident $(($severity:ident))?)|+;
    )+) => {
        /// A code the gateway can send. Its string ([`ProblemCode::as_str`]) is what clients see
        /// and what storage keeps.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ProblemCode {
            $( #[doc = $description] $variant, )+
        }

        impl ProblemCode {
            /// Every code, in the order of the table.
            pub const ALL: &'static [ProblemCode] = &[$(ProblemCode::$variant),+];

            /// The stable string clients see.
            pub fn as_str(self) -> &'static str {
                match self { $(ProblemCode::$variant => $code,)+ }
            }

            /// Where the code is reported.
            pub fn kinds(self) -> &'static [CodeKind] {
                match self { $(ProblemCode::$variant => &[$(CodeKind::$kind),+],)+ }
            }

            /// The severity of a line problem; `None` for a code that is never one.
            pub fn severity(self) -> Option<Severity> {
                match self { $(ProblemCode::$variant => problem_codes!(@severity $($($severity)?)+),)+ }
            }

            /// One sentence for people.
            pub fn description(self) -> &'static str {
                let doc_text: &'static str = match self { $(ProblemCode::$variant => $description,)+ };
                // A doc comment's text starts with the space after `///`.
                doc_text.trim()
            }
        }
    };
}

problem_codes! {
    // A remittance line's own fields (`domain::remittance::check_line`).
    /// An amount is missing, is not a decimal amount, or is out of range (a line's is above 0.00 and at most 99999999.99).
    AmountInvalid = "AMOUNT_INVALID", LineProblem(Error) | RegistryProblem;
    /// The pay date is missing or is not a real calendar date in the form the file's format uses.
    PayDateInvalid = "PAY_DATE_INVALID", LineProblem(Error);
    /// The pay date is after the day the file was received.
    PayDateInFuture = "PAY_DATE_IN_FUTURE", LineProblem(Error);
    /// The SSN is missing or is not a number the SSA issues (9 digits, not beginning with 000, 666 or 9).
    SsnInvalid = "SSN_INVALID", LineProblem(Error) | RegistryProblem;
    /// The employer's FEIN is not 9 digits, or a line has none.
    FeinInvalid = "FEIN_INVALID", LineProblem(Error) | RegistryProblem;
    /// The line is for a FEIN the sender's API key was not issued for, so its money is not taken in.
    FeinNotAuthorized = "FEIN_NOT_AUTHORIZED", LineProblem(Error);
    /// The employee's last name is empty.
    NameMissing = "NAME_MISSING", LineProblem(Error);
    /// The FIPS code is not 5 or 7 digits.
    FipsInvalid = "FIPS_INVALID", LineProblem(Error);
    /// The FIPS code is another state's: the payment belongs to that state's disbursement unit.
    FipsOtherState = "FIPS_OTHER_STATE", LineProblem(Error);
    /// The medical support indicator is not Y, N or W.
    MedicalSupportInvalid = "MEDICAL_SUPPORT_INVALID", LineProblem(Error);
    /// A yes-or-no field is neither Y nor N.
    FlagInvalid = "FLAG_INVALID", LineProblem(Error) | RegistryProblem;
    /// A NACHA entry has no DED segment, several in a CCD+ entry, or one that is not `DED*CS*case*date*amount*SSN…` with the amount in cents.
    DedMalformed = "DED_MALFORMED", LineProblem(Error);
    /// A NACHA entry's amount differs from the sum of its DED segments' amounts.
    AmountMismatch = "AMOUNT_MISMATCH", LineProblem(Error);
    // Who the line's money is for (`domain::remittance::identify`).
    /// The case number is not 8 digits.
    CaseNumberInvalid = "CASE_NUMBER_INVALID", LineProblem(Warning) | RegistryProblem;
    /// The case number is not known to the agency, so the line is identified by its SSN if it can be.
    CaseNumberUnknown = "CASE_NUMBER_UNKNOWN", LineProblem(Warning);
    /// The parent was found by the employee's SSN, not by the case number: the employer should correct its records.
    IdentifiedBySsn = "IDENTIFIED_BY_SSN", LineProblem(Warning);
    /// The file arrived more than the 7 business days federal law allows after the pay date.
    LateRemittance = "LATE_REMITTANCE", LineProblem(Warning);
    /// The case belongs to a parent with another SSN: the money is held in suspense for review.
    SsnMismatch = "SSN_MISMATCH", LineProblem(Warning);
    /// The SSN matches more than one parent: the money is held in suspense for review.
    SsnMatchesSeveral = "SSN_MATCHES_SEVERAL", LineProblem(Warning);
    /// Neither the case number nor the SSN identify a parent: the money is held in suspense for review.
    ObligorNotIdentified = "OBLIGOR_NOT_IDENTIFIED", LineProblem(Warning);
    /// The line reports the end of the employee's employment, recorded as a termination notice for the agency.
    EmploymentTerminated = "EMPLOYMENT_TERMINATED", LineProblem(Notice);
    /// The line is a NACHA zero-dollar prenote: validated, no money recorded.
    Prenote = "PRENOTE", LineProblem(Notice);

    // Reading a CSV file, remittance or registry (`formats::csv_remittance`, `formats::registry`).
    /// The file is empty: it has no header row.
    HeaderMissing = "HEADER_MISSING", FileRefusal | RegistryProblem;
    /// The header names a column the format does not have.
    HeaderUnknownColumn = "HEADER_UNKNOWN_COLUMN", FileRefusal | RegistryProblem;
    /// The header names a column twice.
    HeaderDuplicateColumn = "HEADER_DUPLICATE_COLUMN", FileRefusal | RegistryProblem;
    /// The header lacks a required column.
    HeaderMissingColumn = "HEADER_MISSING_COLUMN", FileRefusal | RegistryProblem;
    /// A row has another number of fields than the header.
    RowFieldCount = "ROW_FIELD_COUNT", FileRefusal | RegistryProblem;
    /// A row, or a piece of an XML document, is longer than the gateway's limit (often an unclosed quote swallowing the rest of the file).
    RecordTooLong = "RECORD_TOO_LONG", FileRefusal | RegistryProblem;
    /// The file is not UTF-8 text (it may be UTF-16 or a binary file).
    FileNotUtf8 = "FILE_NOT_UTF8", FileRefusal | RegistryProblem;
    /// The file cannot be read as CSV.
    FileNotCsv = "FILE_NOT_CSV", FileRefusal | RegistryProblem;
    /// The file has more lines (payments, registry rows or returns) than the gateway's limit per file.
    TooManyLines = "TOO_MANY_LINES", FileRefusal | RegistryProblem;

    // Any remittance file (`formats`).
    /// The file has no payment line: nothing was recorded and its batch id stays free.
    NoLines = "NO_LINES", FileRefusal;
    /// The file's line count or total differs from the control totals declared with it or in it.
    ControlTotalMismatch = "CONTROL_TOTAL_MISMATCH", FileRefusal;

    // XML remittances (`formats::xml_remittance`).
    /// The XML header lacks LineCount or TotalAmount.
    ControlTotalsMissing = "CONTROL_TOTALS_MISSING", FileRefusal;
    /// The XML header's LineCount is not a whole number or its TotalAmount is not an amount.
    ControlTotalsInvalid = "CONTROL_TOTALS_INVALID", FileRefusal;
    /// The file is not well-formed XML, or holds characters XML does not allow.
    XmlMalformed = "XML_MALFORMED", FileRefusal;
    /// The XML file has a DOCTYPE, which a remittance may not have (no entities are expanded).
    XmlDoctypeForbidden = "XML_DOCTYPE_FORBIDDEN", FileRefusal;
    /// An XML element is not in the remittance namespace.
    XmlNamespace = "XML_NAMESPACE", FileRefusal;
    /// An XML element is unknown or out of place.
    XmlUnknownElement = "XML_UNKNOWN_ELEMENT", FileRefusal;
    /// The XML header's BatchId is not the submitted batch id.
    XmlBatchIdMismatch = "XML_BATCH_ID_MISMATCH", FileRefusal;

    // NACHA remittances and ACH return files (`formats::nacha`, `formats::ach_returns`).
    /// The upload was interrupted while the NACHA file was read.
    NachaRead = "NACHA_READ", FileRefusal;
    /// A NACHA record is not 94 characters long.
    NachaRecordLength = "NACHA_RECORD_LENGTH", FileRefusal;
    /// A NACHA record holds a byte that is not printable ASCII.
    NachaRecordCharacter = "NACHA_RECORD_CHARACTER", FileRefusal;
    /// A NACHA record's type code is unknown or out of order, or the file ends without a file control record.
    NachaRecordType = "NACHA_RECORD_TYPE", FileRefusal;
    /// The NACHA file header's priority code, record size, blocking factor or format code is wrong.
    NachaFileHeader = "NACHA_FILE_HEADER", FileRefusal;
    /// A NACHA batch is not of credits (service class 200 or 220) with SEC code CCD or CTX.
    NachaBatchHeader = "NACHA_BATCH_HEADER", FileRefusal;
    /// A NACHA entry is neither a credit (transaction code 22 or 32) nor a prenote (23 or 33).
    NachaTransactionCode = "NACHA_TRANSACTION_CODE", FileRefusal;
    /// A NACHA entry's receiving DFI id or amount is not digits.
    NachaEntryDetail = "NACHA_ENTRY_DETAIL", FileRefusal;
    /// A NACHA addenda record has the wrong type code, follows an entry that announces none, is out of sequence, or is a CCD entry's second.
    NachaAddenda = "NACHA_ADDENDA", FileRefusal;
    /// A NACHA batch or file control's counts or amounts do not match the records.
    NachaControlTotals = "NACHA_CONTROL_TOTALS", FileRefusal;
    /// A NACHA batch or file control's entry hash does not match the entries.
    NachaEntryHash = "NACHA_ENTRY_HASH", FileRefusal;
    /// The NACHA file is not padded with 9s to a multiple of 10 records.
    NachaBlocking = "NACHA_BLOCKING", FileRefusal;
    /// An ACH return entry has no addenda record, or one whose type code is not 99.
    AchReturnAddenda = "ACH_RETURN_ADDENDA", FileRefusal;

    // Case registry rows (`domain::registry`, and the stored registry in `storage`).
    /// A required column of the row is empty.
    FieldRequired = "FIELD_REQUIRED", RegistryProblem;
    /// The obligor id is not 1 to 32 printable characters.
    ObligorIdInvalid = "OBLIGOR_ID_INVALID", RegistryProblem;
    /// A name is longer than 100 characters or holds control characters.
    NameInvalid = "NAME_INVALID", RegistryProblem;
    /// The order id is not 1 to 32 printable characters.
    OrderIdInvalid = "ORDER_ID_INVALID", RegistryProblem;
    /// The start month is not a month written YYYY-MM.
    MonthInvalid = "MONTH_INVALID", RegistryProblem;
    /// A date is not a real calendar date written YYYY-MM-DD.
    DateInvalid = "DATE_INVALID", RegistryProblem;
    /// The order id already appears on an earlier row of the file.
    OrderIdDuplicate = "ORDER_ID_DUPLICATE", RegistryProblem;
    /// The case belongs to another obligor, on an earlier row of the file or in the stored registry.
    CaseOwnerConflict = "CASE_OWNER_CONFLICT", RegistryProblem;
    /// The order belongs to another obligor in the stored registry.
    OrderOwnerConflict = "ORDER_OWNER_CONFLICT", RegistryProblem;
    /// The obligor has another SSN on an earlier row of the file.
    ObligorSsnConflict = "OBLIGOR_SSN_CONFLICT", RegistryProblem;
    /// The obligor has another name on an earlier row of the file.
    ObligorNameConflict = "OBLIGOR_NAME_CONFLICT", RegistryProblem;

    // API errors (`grpc::status` maps each to its gRPC status code).
    /// The call carried no valid credentials: send `authorization: Bearer <key>`.
    ApiKeyRequired = "API_KEY_REQUIRED", ApiError;
    /// The gateway cannot check credentials just now: retry shortly.
    KeyStoreUnavailable = "KEY_STORE_UNAVAILABLE", ApiError;
    /// The caller's role may not make this call.
    RoleNotAllowed = "ROLE_NOT_ALLOWED", ApiError;
    /// A request field is malformed or out of range: the metadata's `field` and the `BadRequest` details name every wrong field.
    InvalidField = "INVALID_FIELD", ApiError;
    /// What the request names does not exist, or is not the caller's to see.
    NotFound = "NOT_FOUND", ApiError;
    /// The sender already used this batch id for a different file.
    BatchIdReused = "BATCH_ID_REUSED", ApiError;
    /// This idempotency key was already used for a different payment.
    IdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED", ApiError;
    /// The key name already belongs to keys of another role.
    KeyNameHasOtherRole = "KEY_NAME_HAS_OTHER_ROLE", ApiError;
    /// The employer's name already has keys for other FEINs, and keys of one name share their FEINs.
    KeyNameHasOtherFeins = "KEY_NAME_HAS_OTHER_FEINS", ApiError;
    /// The payer already has a bank account: replace it instead of adding a second.
    BankAccountExists = "BANK_ACCOUNT_EXISTS", ApiError;
    /// The payer has no bank account.
    NoBankAccount = "NO_BANK_ACCOUNT", ApiError;
    /// The payer's bank account is still being validated: no money was taken.
    BankAccountPending = "BANK_ACCOUNT_PENDING", ApiError;
    /// The bank returned the payer's account: replace it and let it be validated again.
    BankAccountUnusable = "BANK_ACCOUNT_UNUSABLE", ApiError;
    /// An upload or request exceeds a configured limit.
    LimitExceeded = "LIMIT_EXCEEDED", ApiError;
    /// The caller sent more than its rate allows: retry after the metadata's `retry_after_ms`.
    RateLimited = "RATE_LIMITED", ApiError;
    /// The gateway is at its limit of calls in flight and shed this one: retry shortly.
    Overloaded = "OVERLOADED", ApiError;
    /// The call ran past its deadline, or its upload stalled.
    DeadlineExceeded = "DEADLINE_EXCEEDED", ApiError;
    /// The client's upload stream failed or was cancelled.
    UploadInterrupted = "UPLOAD_INTERRUPTED", ApiError;
    /// The suspense item was already resolved or returned: nothing was changed.
    SuspenseItemNotOpen = "SUSPENSE_ITEM_NOT_OPEN", ApiError;
    /// The termination notice was already marked handled: nothing was changed.
    NoticeAlreadyHandled = "NOTICE_ALREADY_HANDLED", ApiError;
    /// A review requested within 3 years of the last one (or of the order's start) needs a stated reason.
    ReviewNeedsReason = "REVIEW_NEEDS_REASON", ApiError;
    /// The order already has an end in force (the back office's, or the registry's on or before the date): withdraw it first.
    OrderAlreadyEnded = "ORDER_ALREADY_ENDED", ApiError;
    /// The order has no end of the back office in force to withdraw.
    NoEndToWithdraw = "NO_END_TO_WITHDRAW", ApiError;
    /// More unapplied credit than the obligor has left.
    CreditNotAvailable = "CREDIT_NOT_AVAILABLE", ApiError;
    /// More than the order has due where the credit would go.
    CreditBeyondDue = "CREDIT_BEYOND_DUE", ApiError;
    /// A concurrent update got there first: retrying the request is safe.
    ConcurrentUpdate = "CONCURRENT_UPDATE", ApiError;
    /// The database is busy or unavailable: retry shortly.
    DatabaseBusy = "DATABASE_BUSY", ApiError;
    /// An unexpected error: the gateway's log has the details.
    Internal = "INTERNAL", ApiError;
}

impl ProblemCode {
    /// Whether the code is reported as a `kind`.
    pub fn is(self, kind: CodeKind) -> bool {
        self.kinds().contains(&kind)
    }
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reference of every code, `docs/problem-codes.md`: grouped by kind, each code with its
/// severity (for line problems) and description.
pub fn reference_markdown() -> String {
    // Writing to a String cannot fail, so the `fmt::Result`s below are ignored.
    let mut doc = String::new();
    doc.push_str(
        "# Problem codes\n\
         \n\
         <!-- Generated from src/domain/codes.rs: do not edit. Regenerate with `UPDATE_DOCS=1 cargo test --test problem_codes`. -->\n\
         \n\
         Every code the gateway can send. A code is a stable string in SCREAMING_SNAKE_CASE that never changes meaning \
         once published. The set is open, like `google.rpc.ErrorInfo.reason`: later versions may add codes, so a client \
         should treat a code it does not know by its kind (and, for a line problem, its severity) rather than fail. A code \
         that several kinds share (a malformed CSV header, for one) is listed under each, with one meaning.\n",
    );
    for kind in CodeKind::ALL {
        // Severity is a line problem's only: a code other kinds share shows none under them.
        let with_severity = kind == CodeKind::LineProblem;
        let shown_severity = |code: ProblemCode| code.severity().filter(|_| with_severity);
        let mut codes: Vec<ProblemCode> = ProblemCode::ALL.iter().copied().filter(|code| code.is(kind)).collect();
        codes.sort_by_key(|&code| (shown_severity(code), code.as_str()));

        let _ = write!(doc, "\n## {}\n\n{}\n", kind.title(), kind.where_reported());
        if with_severity {
            doc.push('\n');
            for severity in Severity::ALL {
                let _ = writeln!(doc, "- {}: {}.", severity.as_str(), severity.description());
            }
        }
        doc.push('\n');
        doc.push_str(if with_severity { "| Code | Severity | Meaning |\n|---|---|---|\n" } else { "| Code | Meaning |\n|---|---|\n" });
        for code in codes {
            let description = table_cell(code.description());
            let _ = match shown_severity(code) {
                Some(severity) => writeln!(doc, "| `{code}` | {} | {description} |", severity.as_str()),
                None => writeln!(doc, "| `{code}` | {description} |"),
            };
        }
    }
    doc
}

/// A description as a Markdown table cell: a `|` would end the cell.
fn table_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn is_screaming_snake_case(text: &str) -> bool {
        let starts_with_letter = text.starts_with(|c: char| c.is_ascii_uppercase());
        let words_are_capitals_and_digits =
            text.split('_').all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        starts_with_letter && words_are_capitals_and_digits
    }

    /// `IdentifiedBySsn` → `IDENTIFIED_BY_SSN`.
    fn screaming_snake_case_of(camel: &str) -> String {
        let mut out = String::new();
        for (index, c) in camel.char_indices() {
            if c.is_ascii_uppercase() && index > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    }

    #[test]
    fn the_case_check_refuses_what_is_not_screaming_snake_case() {
        for good in ["NO_LINES", "FILE_NOT_UTF8", "INTERNAL"] {
            assert!(is_screaming_snake_case(good), "{good}");
        }
        for bad in ["", "no_lines", "No_Lines", "NO__LINES", "_NO_LINES", "NO_LINES_", "NO-LINES", "NO LINES", "8_LINES"] {
            assert!(!is_screaming_snake_case(bad), "{bad:?}");
        }
    }

    #[test]
    fn every_code_string_is_unique_and_screaming_snake_case() {
        let mut seen = HashSet::new();
        for code in ProblemCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} is the string of two codes");
            assert!(is_screaming_snake_case(text), "{text} is not SCREAMING_SNAKE_CASE");
        }
    }

    #[test]
    fn every_code_string_spells_its_variant() {
        for code in ProblemCode::ALL {
            assert_eq!(code.as_str(), screaming_snake_case_of(&format!("{code:?}")), "the string of {code:?}");
        }
    }

    #[test]
    fn a_code_has_a_severity_exactly_when_it_is_a_line_problem() {
        for code in ProblemCode::ALL {
            assert_eq!(code.severity().is_some(), code.is(CodeKind::LineProblem), "{code}");
        }
    }

    #[test]
    fn every_code_is_described_in_one_sentence() {
        for code in ProblemCode::ALL {
            let description = code.description();
            assert!(description.starts_with(|c: char| c.is_uppercase()), "{code}: {description}");
            assert!(description.ends_with('.') && !description.contains('\n'), "{code}: {description}");
        }
    }

    #[test]
    fn the_reference_lists_every_code_under_each_of_its_kinds() {
        let reference = reference_markdown();
        let sections: Vec<&str> = reference.split("\n## ").skip(1).collect();
        assert_eq!(sections.len(), CodeKind::ALL.len());
        for (kind, section) in CodeKind::ALL.into_iter().zip(sections) {
            assert!(section.starts_with(kind.title()), "{section}");
            for code in ProblemCode::ALL {
                let row = format!("| `{code}` |");
                assert_eq!(section.contains(&row), code.is(kind), "{code} under {}", kind.title());
            }
        }
    }
}
