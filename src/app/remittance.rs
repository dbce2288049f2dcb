//! Remittance ingestion: a file streamed in, spooled to disk while its SHA-256 is taken,
//! checked for replays, then parsed, validated, matched and written in one transaction.
//!
//! Exactly once: a batch id is unique per sender (the same content gets the first
//! acknowledgment again; different content is refused), identical bytes under another batch
//! id are reported as a duplicate, and a file commits whole or not at all — a crash mid-way
//! leaves nothing, so resending after it works.

use std::collections::HashMap;
use std::io::{Seek, SeekFrom};

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::paging::{self, Page, PageRequest};
use super::{App, AppError, Caller, UploadCheck, UploadStream};
use crate::domain::access::Action;
use crate::domain::registry_index::RegistryIndex;
use crate::domain::remittance::{
    check_line, restrict_to_employers, CaseMatch, CheckedLine, LineStatus, ObligorDirectory, ProblemCode, RawLine,
};
use crate::domain::{CaseNumber, Fein, Money, ObligorId, Ssn, SsnHmac};
use crate::formats::{remittance_lines, DeclaredTotals, FileError, RemittanceFormat};
use crate::storage::remittance::{
    DirectoryPage, FileFilter, LineBatch, LineCounts, LineEffects, LineToWrite, NewRemittance, PayrollCollection, RemittanceSummary,
    RemittanceWriter, StoredLine, StoredProblem, SuspenseHold,
};
use crate::storage::{AuditEntry, StoreError};

/// Lines parsed, looked up, matched and handed to the writer together (which may hold a few
/// batches before it sends them: PostgreSQL's).
const LINES_PER_BATCH: usize = 1000;
/// At most this many lines with problems are listed in an acknowledgment; every line's
/// outcome can be read back with `remittance_lines`.
pub const MAX_LINES_IN_ACKNOWLEDGMENT: usize = 10_000;

/// What the sender states up front. Who the sender is comes from its credentials.
#[derive(Clone, Debug)]
pub struct Submission {
    pub format: RemittanceFormat,
    pub batch_id: String,
    pub declared: DeclaredTotals,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckStatus {
    /// The file was recorded (now, or when first sent with this batch id).
    Accepted,
    /// Nothing was recorded: the file cannot be read, or its totals disagree.
    Refused,
    /// The same bytes were already accepted under another batch id; nothing recorded.
    Duplicate,
}

impl AckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AckStatus::Accepted => "ACCEPTED",
            AckStatus::Refused => "REFUSED",
            AckStatus::Duplicate => "DUPLICATE",
        }
    }
}

/// A problem of a line, as the application reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineProblemView {
    pub code: String,
    pub field: String,
    /// ERROR, WARNING or NOTICE.
    pub severity: String,
    pub message: String,
}

impl From<StoredProblem> for LineProblemView {
    fn from(problem: StoredProblem) -> LineProblemView {
        LineProblemView { code: problem.code, field: problem.field, severity: problem.severity, message: problem.message }
    }
}

/// A file as its sender sees it in a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSummary {
    pub sender: String,
    pub batch_id: String,
    pub format: String,
    /// RFC 3339.
    pub received_at: String,
    pub counts: LineCounts,
}

impl From<RemittanceSummary> for FileSummary {
    fn from(summary: RemittanceSummary) -> FileSummary {
        FileSummary {
            sender: summary.sender,
            batch_id: summary.batch_id,
            format: summary.format,
            received_at: summary.received_at,
            counts: summary.counts,
        }
    }
}

/// The outcome of one line, with its problems.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineOutcome {
    pub line: u64,
    pub status: String,
    pub problems: Vec<LineProblemView>,
}

impl From<StoredLine> for LineOutcome {
    fn from(line: StoredLine) -> LineOutcome {
        LineOutcome { line: line.line, status: line.status, problems: line.problems.into_iter().map(LineProblemView::from).collect() }
    }
}

/// The answer to a submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acknowledgment {
    pub batch_id: String,
    pub status: AckStatus,
    pub format: String,
    pub counts: LineCounts,
    /// Why a refused file was refused.
    pub file_problem: Option<FileError>,
    /// The lines that have problems (all of them up to [`MAX_LINES_IN_ACKNOWLEDGMENT`]).
    pub lines: Vec<LineOutcome>,
    pub lines_truncated: bool,
    /// For a duplicate: the batch id the same bytes were accepted under.
    pub duplicate_of: Option<String>,
    /// True when this is the first acknowledgment again (a resend of the same file).
    pub replayed: bool,
    pub received_at: String,
}

/// What the lines of a file checked so far add up to.
#[derive(Default)]
struct CheckedFile {
    /// Its total is the money the file gave: every line not rejected (a rejected line
    /// records nothing).
    counts: LineCounts,
    outcomes: Vec<LineOutcome>,
    truncated: bool,
}

impl CheckedFile {
    /// Validates and matches a batch of lines, counting them; what to write for each.
    fn check(
        &mut self,
        raw_lines: &[RawLine],
        received_on: chrono::NaiveDate,
        directory: &BatchDirectory,
        employer_feins: Option<&[Fein]>,
    ) -> Vec<LineToWrite> {
        let mut to_write = Vec::with_capacity(raw_lines.len());
        for raw in raw_lines {
            self.counts.line_count += 1;
            let checked = check_line(raw, received_on, directory);
            let checked = match employer_feins {
                Some(feins) => restrict_to_employers(checked, feins),
                None => checked,
            };
            let status = checked.status;
            count(&mut self.counts, status);
            let line = line_to_write(raw, checked, directory);
            if status != LineStatus::Rejected {
                self.counts.total += line.record.amount.unwrap_or(Money::ZERO);
            }
            if !line.record.problems.is_empty() {
                if self.outcomes.len() < MAX_LINES_IN_ACKNOWLEDGMENT {
                    self.outcomes.push(LineOutcome {
                        line: line.record.line,
                        status: line.record.status.clone(),
                        problems: line.record.problems.iter().cloned().map(LineProblemView::from).collect(),
                    });
                } else {
                    self.truncated = true;
                }
            }
            to_write.push(line);
        }
        to_write
    }
}

/// Who is sending a file: the sender namespace, and the FEINs an employer is limited to.
struct Sender {
    name: String,
    employer_feins: Option<Vec<Fein>>,
}

impl App {
    /// Receives, checks and records one remittance file for the calling vendor or employer.
    pub async fn submit_remittance(
        &self,
        caller: &Caller,
        submission: Submission,
        upload: impl UploadStream,
    ) -> Result<Acknowledgment, AppError> {
        let audit = self.authorize(caller, Action::SubmitRemittance, format!("batch:{}", submission.batch_id)).await?;
        let sender =
            Sender { name: caller.principal.name.clone(), employer_feins: caller.principal.employer_feins().map(<[Fein]>::to_vec) };
        let result = self.submit_remittance_audited(sender, submission, upload, &audit).await;
        match &result {
            // Written with the file, in its transaction.
            Ok(ack) if ack.status == AckStatus::Accepted && !ack.replayed => {}
            Ok(ack) => self.audit_outcome(audit, if ack.replayed { "REPLAYED" } else { ack.status.as_str() }).await?,
            Err(error) => self.record_failure(audit, error).await?,
        }
        result
    }

    async fn submit_remittance_audited(
        &self,
        sender: Sender,
        submission: Submission,
        upload: impl UploadStream,
        audit: &AuditEntry,
    ) -> Result<Acknowledgment, AppError> {
        check_batch_id(&submission.batch_id)?;
        let (spool, content_sha256) = self.spool(upload).await?;

        if let Some(replay) = self.replay(&sender.name, &submission, &content_sha256).await? {
            return Ok(replay);
        }
        let received_at = self.clock.now_rfc3339();
        let new = NewRemittance {
            sender: sender.name.clone(),
            batch_id: submission.batch_id.clone(),
            format: submission.format.as_str(),
            content_sha256: content_sha256.clone(),
            received_at: received_at.clone(),
            received_on: self.today(),
        };
        // The batch id and the content are claimed by the insert itself (unique per sender):
        // of two uploads racing for either, the second waits for the first to commit, then is
        // answered as a resend or a duplicate. A claim freed by a refusal is simply retried.
        let mut writer = None;
        for _ in 0..3 {
            match self.store.begin_remittance(new.clone(), audit.clone()).await {
                Ok(begun) => {
                    writer = Some(begun);
                    break;
                }
                Err(StoreError::Conflict(_)) => {
                    if let Some(answer) = self.replay(&sender.name, &submission, &content_sha256).await? {
                        return Ok(answer);
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        let writer = writer.ok_or_else(|| AppError::Store(StoreError::Conflict("the batch id or content stayed claimed".into())))?;
        self.ingest(sender.employer_feins, submission, spool, writer, received_at).await
    }

    /// The acknowledgment of a file the sender already sent, if it did.
    async fn replay(&self, sender: &str, submission: &Submission, content_sha256: &str) -> Result<Option<Acknowledgment>, AppError> {
        if let Some(first) = self.store.remittance_by_batch(sender, &submission.batch_id).await? {
            if first.content_sha256 != content_sha256 {
                return Err(AppError::already_exists(
                    ProblemCode::BatchIdReused,
                    format!("batch:{}", submission.batch_id),
                    format!("batch id {} was already used for a different file; a batch id is unique per sender", submission.batch_id),
                ));
            }
            let mut ack = self.acknowledgment_of(first).await?;
            ack.replayed = true;
            return Ok(Some(ack));
        }
        if let Some(first) = self.store.remittance_by_content(sender, content_sha256).await? {
            // The same batch committed between the two reads (a resend racing its first
            // send): it is a resend, answered with the first acknowledgment.
            if first.batch_id == submission.batch_id {
                let mut ack = self.acknowledgment_of(first).await?;
                ack.replayed = true;
                return Ok(Some(ack));
            }
            return Ok(Some(Acknowledgment {
                batch_id: submission.batch_id.clone(),
                status: AckStatus::Duplicate,
                format: submission.format.as_str().to_owned(),
                counts: LineCounts::default(),
                file_problem: None,
                lines: Vec::new(),
                lines_truncated: false,
                duplicate_of: Some(first.batch_id),
                replayed: false,
                received_at: self.clock.now_rfc3339(),
            }));
        }
        Ok(None)
    }

    /// Writes the upload to an anonymous temporary file, taking its SHA-256 on the way; the
    /// upload must end with the end message that matches it.
    async fn spool(&self, mut upload: impl UploadStream) -> Result<(std::fs::File, String), AppError> {
        let file = tokio::task::spawn_blocking(tempfile::tempfile)
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?
            .map_err(|e| AppError::Internal(format!("cannot create a spool file: {e}")))?;
        let mut file = tokio::fs::File::from_std(file);
        let mut check = UploadCheck::new(self.limits.max_bytes);
        while let Some(part) = upload.next().await {
            if let Some(chunk) = check.take(part?)? {
                file.write_all(&chunk).await.map_err(|e| AppError::Internal(format!("spooling the upload: {e}")))?;
            }
        }
        let content_sha256 = check.finish()?;
        file.flush().await.map_err(|e| AppError::Internal(format!("spooling the upload: {e}")))?;
        let mut file = file.into_std().await;
        file.seek(SeekFrom::Start(0)).map_err(|e| AppError::Internal(format!("spooling the upload: {e}")))?;
        Ok((file, content_sha256))
    }

    /// Parses on a blocking thread, looks up, validates and matches batches of lines here,
    /// and writes them beside, each stage a batch or two behind the one before.
    async fn ingest(
        &self,
        employer_feins: Option<Vec<Fein>>,
        submission: Submission,
        spool: std::fs::File,
        mut writer: Box<dyn RemittanceWriter>,
        received_at: String,
    ) -> Result<Acknowledgment, AppError> {
        let received_on = self.today();
        let (sender, mut batches) = mpsc::channel::<Result<Vec<RawLine>, FileError>>(4);
        let (format, declared, batch_id) = (submission.format, submission.declared, submission.batch_id.clone());
        let file_limits = self.limits.file;
        let parser = tokio::task::spawn_blocking(move || {
            let lines = match remittance_lines(format, spool, declared, &batch_id, file_limits) {
                Ok(lines) => lines,
                Err(error) => return drop(sender.blocking_send(Err(error))),
            };
            let mut batch = Vec::with_capacity(LINES_PER_BATCH);
            for line in lines {
                match line {
                    Ok(line) => batch.push(line),
                    Err(error) => return drop(sender.blocking_send(Err(error))),
                }
                if batch.len() == LINES_PER_BATCH && sender.blocking_send(Ok(std::mem::take(&mut batch))).is_err() {
                    return;
                }
            }
            if !batch.is_empty() {
                let _ = sender.blocking_send(Ok(batch));
            }
        });

        // Four stages, each a batch or two behind the one before, so that no stage waits for
        // another to finish a batch: the parser (its own thread), the registry lookup of a
        // batch's cases and SSNs (the store's read connections), checking, and the writer
        // (the file's transaction). Lookups and writes run on the store's threads while this
        // task checks; all three are polled by this one task: on two cores, more tasks only
        // took turns with the store's threads (measured in docs/performance.md). A stage that
        // stops closes its channel and every stage after it stops; a file is finished only
        // when every stage ended well.
        let (to_checker, mut looked_up) = mpsc::channel::<Result<(Vec<RawLine>, BatchDirectory), FileError>>(2);
        let looking_up = async move {
            while let Some(batch) = batches.recv().await {
                let next = match batch {
                    Ok(lines) => {
                        let directory = BatchDirectory::load(self, &lines).await?;
                        Ok((lines, directory))
                    }
                    Err(file_problem) => Err(file_problem),
                };
                let refused = next.is_err();
                if to_checker.send(next).await.is_err() || refused {
                    break;
                }
            }
            Ok::<_, AppError>(())
        };
        let (to_writer, mut to_write) = mpsc::channel::<LineBatch>(2);
        let writing = async move {
            while let Some(batch) = to_write.recv().await {
                writer.write_lines(batch).await?;
            }
            Ok::<_, AppError>(writer)
        };
        let checking = async move {
            let mut checked = CheckedFile::default();
            while let Some(batch) = looked_up.recv().await {
                let (raw_lines, directory) = match batch {
                    Ok(batch) => batch,
                    Err(file_problem) => return Ok(Err(file_problem)),
                };
                let lines = checked.check(&raw_lines, received_on, &directory, employer_feins.as_deref());
                let batch = LineBatch { lines, keys_registered_at: directory.keys_registered_at() };
                if to_writer.send(batch).await.is_err() {
                    break; // The writer failed: its error is the answer.
                }
            }
            Ok(Ok(checked))
        };
        let ((), checked, writer) = tokio::try_join!(looking_up, checking, writing)?;
        // A parser that died mid-file closed its channel like one that reached the end: only
        // its clean end lets the file be finished (a panic would otherwise commit a part).
        parser.await.map_err(|e| AppError::Internal(format!("the parser stopped: {e}")))?;
        let checked = match checked {
            Ok(checked) => checked,
            Err(file_problem) => {
                drop(writer); // Rolls back: nothing of a refused file is kept.
                return Ok(self.refused(&submission, file_problem, received_at));
            }
        };
        let CheckedFile { counts, outcomes, truncated } = checked;
        let summary = writer.finish(counts).await?;
        self.metrics.observe_lines(&counts);
        tracing::info!(
            batch_id = %summary.batch_id,
            lines = counts.line_count,
            applied = counts.applied,
            applied_by_ssn = counts.applied_by_ssn,
            suspense = counts.suspense,
            rejected = counts.rejected,
            "remittance accepted"
        );
        let mut ack = acknowledgment(summary);
        ack.lines = outcomes;
        ack.lines_truncated = truncated;
        Ok(ack)
    }

    fn refused(&self, submission: &Submission, problem: FileError, received_at: String) -> Acknowledgment {
        tracing::info!(batch_id = %submission.batch_id, code = problem.code, "remittance refused");
        Acknowledgment {
            batch_id: submission.batch_id.clone(),
            status: AckStatus::Refused,
            format: submission.format.as_str().to_owned(),
            counts: LineCounts::default(),
            file_problem: Some(problem),
            lines: Vec::new(),
            lines_truncated: false,
            duplicate_of: None,
            replayed: false,
            received_at,
        }
    }

    /// A stored file's acknowledgment, with its lines that have problems.
    async fn acknowledgment_of(&self, summary: RemittanceSummary) -> Result<Acknowledgment, AppError> {
        let remittance_id = summary.remittance_id;
        let mut ack = acknowledgment(summary);
        let mut after = 0;
        loop {
            let page = self.store.remittance_lines_after(remittance_id, after, 5000).await?;
            let Some(last) = page.last() else { break };
            after = last.line;
            for line in page.into_iter().filter(|l| !l.problems.is_empty()) {
                if ack.lines.len() == MAX_LINES_IN_ACKNOWLEDGMENT {
                    ack.lines_truncated = true;
                    return Ok(ack);
                }
                ack.lines.push(line.into());
            }
        }
        Ok(ack)
    }

    /// A file's stored acknowledgment: a vendor's or employer's own (`NotFound` for another
    /// sender's batch, as for one that does not exist), or any sender's for the back office.
    pub async fn get_remittance(&self, caller: &Caller, sender: &str, batch_id: &str) -> Result<Acknowledgment, AppError> {
        let audit = self.authorize(caller, Action::GetRemittance, file_object(sender, batch_id)).await?;
        let result = async {
            let summary = self.file_of(caller, sender, batch_id).await?;
            self.acknowledgment_of(summary).await
        }
        .await;
        self.audited_read(audit, result).await
    }

    /// The file a caller may read: a remitter's own, whatever sender it names; the named
    /// sender's for the back office.
    async fn file_of(&self, caller: &Caller, sender: &str, batch_id: &str) -> Result<RemittanceSummary, AppError> {
        let not_found = || AppError::NotFound(format!("no remittance with batch id {batch_id}"));
        let sender = sender.trim();
        let owner = if caller.principal.role.is_remitter() {
            if !sender.is_empty() && sender != caller.principal.name {
                return Err(not_found());
            }
            caller.principal.name.as_str()
        } else if sender.is_empty() {
            return Err(AppError::invalid("sender", "name the file's sender (a key's name): batch ids are unique per sender"));
        } else {
            sender
        };
        self.store.remittance_by_batch(owner, batch_id).await?.ok_or_else(not_found)
    }

    /// Every line's outcome of a file, in file order, read page by page; only the lines that
    /// `filter` keeps.
    pub async fn remittance_lines(
        &self,
        caller: &Caller,
        sender: &str,
        batch_id: &str,
        filter: LineFilter,
    ) -> Result<ReceiverStream<Result<LineOutcome, AppError>>, AppError> {
        let audit = self.authorize(caller, Action::StreamRemittanceLines, file_object(sender, batch_id)).await?;
        let found = self.file_of(caller, sender, batch_id).await;
        let summary = self.audited_read(audit, found).await?;
        let (lines, receiver) = mpsc::channel(256);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut after = 0;
            loop {
                let page = match store.remittance_lines_after(summary.remittance_id, after, 2000).await {
                    Ok(page) => page,
                    Err(error) => return drop(lines.send(Err(error.into())).await),
                };
                let Some(last) = page.last() else { return };
                after = last.line;
                for line in page.into_iter().filter(|line| filter.keeps(line)) {
                    if lines.send(Ok(line.into())).await.is_err() {
                        return; // The client went away.
                    }
                }
            }
        });
        Ok(ReceiverStream::new(receiver))
    }

    /// Files, newest first, a page at a time: a remitter's own, or every sender's for the
    /// back office, with filters.
    pub async fn list_remittances(&self, caller: &Caller, query: FileQuery, page: PageRequest) -> Result<Page<FileSummary>, AppError> {
        let audit = self.authorize(caller, Action::ListRemittances, "remittances").await?;
        let result = async {
            let before = page.id_cursor()?;
            let sender = if caller.principal.role.is_remitter() { Some(caller.principal.name.clone()) } else { query.sender };
            let filter = FileFilter {
                sender,
                employer_fein: query.employer_fein.map(|f| f.as_str().to_owned()),
                received_from: query.received_from,
                received_to: query.received_to,
            };
            let fetched = self.store.remittances(&filter, before, page.size + 1).await?;
            let page = paging::page(REMITTANCE_LIST, page.size, fetched, |file| file.remittance_id.to_string());
            Ok(Page { items: page.items.into_iter().map(FileSummary::from).collect(), next_page_token: page.next_page_token })
        }
        .await;
        self.audited_read(audit, result).await
    }
}

/// The audit trail's name of a file.
fn file_object(sender: &str, batch_id: &str) -> String {
    match sender.trim() {
        "" => format!("batch:{batch_id}"),
        sender => format!("batch:{sender}/{batch_id}"),
    }
}

/// Which files a list shows (the back office's filters; a remitter's list is its own).
#[derive(Clone, Debug, Default)]
pub struct FileQuery {
    pub sender: Option<String>,
    pub employer_fein: Option<Fein>,
    pub received_from: Option<chrono::NaiveDate>,
    pub received_to: Option<chrono::NaiveDate>,
}

/// Which lines of a file to stream: all when empty.
#[derive(Clone, Debug, Default)]
pub struct LineFilter {
    /// APPLIED, APPLIED_BY_SSN, SUSPENSE or REJECTED.
    pub statuses: Vec<String>,
    pub problem_code: Option<String>,
}

impl LineFilter {
    fn keeps(&self, line: &StoredLine) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&line.status))
            && self.problem_code.as_ref().is_none_or(|code| line.problems.iter().any(|p| &p.code == code))
    }
}

/// The name of the list of files, in its page tokens.
pub const REMITTANCE_LIST: &str = "remittances";

fn acknowledgment(summary: RemittanceSummary) -> Acknowledgment {
    Acknowledgment {
        batch_id: summary.batch_id,
        status: AckStatus::Accepted,
        format: summary.format,
        counts: summary.counts,
        file_problem: None,
        lines: Vec::new(),
        lines_truncated: false,
        duplicate_of: None,
        replayed: false,
        received_at: summary.received_at,
    }
}

/// A batch id is the sender's control number: 1 to 64 printable characters.
fn check_batch_id(batch_id: &str) -> Result<(), AppError> {
    let length = batch_id.chars().count();
    if (1..=64).contains(&length) && !batch_id.chars().any(char::is_control) && batch_id.trim() == batch_id {
        Ok(())
    } else {
        Err(AppError::invalid("batch_id", "a batch id is 1 to 64 printable characters"))
    }
}

fn count(counts: &mut LineCounts, status: LineStatus) {
    match status {
        LineStatus::Applied => counts.applied += 1,
        LineStatus::AppliedBySsn => counts.applied_by_ssn += 1,
        LineStatus::Suspense => counts.suspense += 1,
        LineStatus::Rejected => counts.rejected += 1,
    }
}

/// What the registry says of the cases and SSNs a batch of lines quotes, with each SSN's
/// HMAC computed once for the batch.
struct BatchDirectory {
    known: Known,
    /// SSN (its 9 digits as a number) → HMAC, so no line hashes its SSN twice. Lives for one
    /// batch, in memory.
    hmacs: HashMap<u32, SsnHmac>,
    pii: std::sync::Arc<super::PiiKey>,
}

/// Where a batch's answers come from.
enum Known {
    /// The whole registry in memory, at the generation the database had when the batch began.
    Index(std::sync::Arc<RegistryIndex>),
    /// The batch's own cases and SSNs, read from the database.
    Page(DirectoryPage),
}

impl BatchDirectory {
    async fn load(app: &App, lines: &[RawLine]) -> Result<BatchDirectory, AppError> {
        let (store, pii) = (&app.store, app.pii.clone());
        let mut hmacs = HashMap::with_capacity(lines.len());
        for ssn in lines.iter().filter_map(|l| l.employee_ssn.as_deref().and_then(|s| Ssn::parse(s.trim()).ok())) {
            hmacs.entry(ssn_key(&ssn)).or_insert_with(|| pii.ssn_hmac_bytes(&ssn));
        }
        let generation = store.registry_generation().await?;
        let index = app.registry.index_at(store, generation);
        app.metrics.observe_batch_matched(index.is_some());
        if let Some(index) = index {
            return Ok(BatchDirectory { known: Known::Index(index), hmacs, pii });
        }
        let mut cases: Vec<String> = lines
            .iter()
            .filter_map(|l| l.case_number.as_deref().and_then(|c| CaseNumber::parse(c.trim()).ok()))
            .map(|c| c.as_str().to_owned())
            .collect();
        cases.sort_unstable();
        cases.dedup();
        let mut wanted: Vec<String> = hmacs.values().map(SsnHmac::to_hex).collect();
        wanted.sort_unstable();
        let page = store.directory(cases, wanted).await?;
        Ok(BatchDirectory { known: Known::Page(page), hmacs, pii })
    }

    /// The generation at which the registry held every obligor and case this directory
    /// answers with, when it was read as one (the index); a page read for the batch is not.
    fn keys_registered_at(&self) -> Option<i64> {
        match &self.known {
            Known::Index(index) => index.generation_of_registered_keys(),
            Known::Page(_) => None,
        }
    }

    fn hmac(&self, ssn: &Ssn) -> SsnHmac {
        self.hmacs.get(&ssn_key(ssn)).copied().unwrap_or_else(|| self.pii.ssn_hmac_bytes(ssn))
    }
}

/// An SSN's 9 digits as a number (below 10⁹, so a `u32`): a key that costs no allocation.
fn ssn_key(ssn: &Ssn) -> u32 {
    ssn.expose_digits().bytes().fold(0, |number, digit| number * 10 + u32::from(digit - b'0'))
}

impl ObligorDirectory for BatchDirectory {
    fn case_with_ssn(&self, case: &CaseNumber, ssn: &Ssn) -> CaseMatch {
        let hmac = self.hmac(ssn);
        match &self.known {
            Known::Index(index) => index.case_with_ssn(case, &hmac),
            // Every case and SSN of the batch was looked up, so their obligors are all here.
            Known::Page(page) => match page.cases.get(case.as_str()) {
                None => CaseMatch::NoSuchCase,
                Some(owner) if page.obligors_by_ssn.get(&hmac.to_hex()).is_some_and(|obligors| obligors.contains(owner)) => {
                    CaseMatch::SsnMatches(owner.clone())
                }
                Some(_) => CaseMatch::OtherSsn,
            },
        }
    }

    fn obligors_with_ssn(&self, ssn: &Ssn) -> Vec<ObligorId> {
        let hmac = self.hmac(ssn);
        match &self.known {
            Known::Index(index) => index.obligors_with_ssn(&hmac),
            Known::Page(page) => page.obligors_by_ssn.get(&hmac.to_hex()).cloned().unwrap_or_default(),
        }
    }
}

/// What to store for a checked line, and what it does.
fn line_to_write(raw: &RawLine, checked: CheckedLine, directory: &BatchDirectory) -> LineToWrite {
    let (collects_money, held_in_suspense) = (checked.collects_money(), checked.held_in_suspense());
    // Taken apart, so that what the line found is moved into its record, not copied.
    let CheckedLine { line, status, problems, valid, obligor, case_number_received, ssn_last4, prenote } = checked;
    let valid = valid.as_ref();
    let suspense_reason = problems
        .iter()
        .find(|p| matches!(p.code, ProblemCode::SsnMismatch | ProblemCode::ObligorNotIdentified | ProblemCode::SsnMatchesSeveral))
        .map(|p| p.code.as_str().to_owned());
    let known_case =
        (status == LineStatus::Applied).then(|| valid.and_then(|v| v.case_number.as_ref()).map(|c| c.as_str().to_owned())).flatten();
    LineToWrite {
        record: StoredLine {
            line,
            status: status.as_str().to_owned(),
            employer_fein: valid.map(|v| v.employer_fein.as_str().to_owned()).or_else(|| raw.employer_fein.as_deref().map(short_text)),
            case_number: case_number_received.map(case_as_received),
            ssn_last4,
            amount: valid.map(|v| v.amount),
            pay_date: valid.map(|v| v.pay_date),
            obligor_id: obligor,
            prenote,
            problems: problems
                .into_iter()
                .map(|p| StoredProblem {
                    code: p.code.as_str().to_owned(),
                    field: p.field.to_owned(),
                    severity: p.severity().as_str().to_owned(),
                    message: p.message,
                })
                .collect(),
        },
        effects: LineEffects {
            collect: collects_money.then_some(PayrollCollection { case_number: known_case }),
            suspense: held_in_suspense.then(|| SuspenseHold {
                reason: suspense_reason.unwrap_or_else(|| ProblemCode::ObligorNotIdentified.as_str().to_owned()),
                ssn_hmac: valid.map(|v| directory.hmac(&v.ssn).to_hex()),
            }),
            termination_notice: valid.is_some_and(|v| v.employment_terminated) && status != LineStatus::Rejected,
        },
    }
}

/// Text as received, cut to a length the back office can read (a hostile file may send
/// megabytes in one field).
fn short_text(text: &str) -> String {
    text.trim().chars().take(32).collect()
}

/// A case number as received. Employers sometimes type the SSN into the case number field,
/// so a malformed one with 9 or more digits is kept masked, like an SSN.
fn case_as_received(text: String) -> String {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    if digits >= 9 && CaseNumber::parse(&text).is_err() {
        let tail: String = text.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        format!("*****{tail}")
    } else if text.len() <= 32 && text.trim().len() == text.len() {
        text // Already as `short_text` would cut it (at most 32 bytes, so 32 characters).
    } else {
        short_text(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_number_is_kept_as_received_trimmed_cut_or_masked() {
        let received = |text: &str| case_as_received(text.to_owned());
        assert_eq!(received("12345678"), "12345678");
        assert_eq!(received(" 1234-567 "), "1234-567");
        assert_eq!(received(&"x".repeat(40)), "x".repeat(32));
        // 32 characters of 3 bytes each: cut by characters, never inside one.
        assert_eq!(received(&"５".repeat(40)), "５".repeat(32));
        // Kept whole up to 32 characters, whatever their bytes; Unicode spaces trimmed.
        assert_eq!(received(&"x".repeat(32)), "x".repeat(32));
        assert_eq!(received(&"５".repeat(10)), "５".repeat(10));
        assert_eq!(received(&"５".repeat(11)), "５".repeat(11));
        assert_eq!(received("\u{a0}1234567\u{3000}"), "1234567");
        // An SSN typed into the case number field is masked, like an SSN.
        assert_eq!(received("123-45-6789"), "*****6789");
        assert_eq!(received("CASE 123456789"), "*****6789");
    }
}
