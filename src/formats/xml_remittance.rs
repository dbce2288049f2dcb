//! Remittance XML (`remittance-formats.md`): UTF-8, namespace `urn:mo-fspc:remittance:1`,
//! control totals in the header. Read as a stream of events with quick-xml, so a file of any
//! size needs little memory.
//!
//! A DOCTYPE refuses the file, and only XML's five predefined entities and character
//! references are ever expanded: entity-expansion attacks ("billion laughs", external
//! entities) have nothing to work with.

use std::io::{BufReader, Read};

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use crate::domain::codes::ProblemCode;
use crate::domain::remittance::{DateStyle, RawLine};
use crate::domain::Money;

use super::bounded::{is_too_long, Budgeted};
use super::{DeclaredTotals, FileError, LineSource, RunningTotals};
use crate::domain::excerpt;

pub const NAMESPACE: &str = "urn:mo-fspc:remittance:1";

/// The longest text of one element, in bytes.
pub const MAX_TEXT_BYTES: usize = 4 * 1024;
/// The deepest nesting a remittance can have is 4 (Remittance/Employer/Payment/Amount).
const MAX_DEPTH: usize = 8;

/// Where the reader is in the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Outside,
    Remittance,
    Header,
    Employer,
    Payment,
    /// Inside a leaf element whose text is being read.
    Leaf(Leaf),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leaf {
    BatchId,
    LineCount,
    TotalAmount,
    CaseNumber,
    EmployeeSsn,
    LastName,
    FirstName,
    EmployeeId,
    PayDate,
    Amount,
    Fips,
    MedicalSupport,
    EmploymentTerminated,
}

const PAYMENT_ELEMENTS: [(&str, Leaf); 10] = [
    ("CaseNumber", Leaf::CaseNumber),
    ("EmployeeSSN", Leaf::EmployeeSsn),
    ("LastName", Leaf::LastName),
    ("FirstName", Leaf::FirstName),
    ("EmployeeId", Leaf::EmployeeId),
    ("PayDate", Leaf::PayDate),
    ("Amount", Leaf::Amount),
    ("FIPS", Leaf::Fips),
    ("MedicalSupport", Leaf::MedicalSupport),
    ("EmploymentTerminated", Leaf::EmploymentTerminated),
];

const HEADER_ELEMENTS: [(&str, Leaf); 3] = [("BatchId", Leaf::BatchId), ("LineCount", Leaf::LineCount), ("TotalAmount", Leaf::TotalAmount)];

/// The `Payment`s of a remittance XML, one [`RawLine`] at a time; the control totals are
/// checked at the end of the document.
pub struct XmlLines<R: Read> {
    reader: NsReader<BufReader<Budgeted<R>>>,
    /// The longest event (a tag with its attributes, a text node, a comment) in bytes.
    max_record_bytes: usize,
    buffer: Vec<u8>,
    stack: Vec<Place>,
    text: String,
    batch_id: String,
    employer_fein: Option<String>,
    employer_name: Option<String>,
    payment: RawLine,
    header_batch_id: Option<String>,
    header_line_count: Option<String>,
    header_total: Option<String>,
    totals: RunningTotals,
    declared: DeclaredTotals,
    /// `</Remittance>` was read: nothing but comments may follow.
    root_closed: bool,
}

impl<R: Read> XmlLines<R> {
    pub fn new(input: R, batch_id: &str, declared: DeclaredTotals, max_record_bytes: usize) -> Result<XmlLines<R>, FileError> {
        let mut reader = NsReader::from_reader(BufReader::new(Budgeted::new(input, max_record_bytes)));
        reader.config_mut().trim_text(true);
        reader.config_mut().expand_empty_elements = true;
        Ok(XmlLines {
            reader,
            max_record_bytes,
            buffer: Vec::new(),
            stack: vec![Place::Outside],
            text: String::new(),
            batch_id: batch_id.to_owned(),
            employer_fein: None,
            employer_name: None,
            payment: RawLine::default(),
            header_batch_id: None,
            header_line_count: None,
            header_total: None,
            totals: RunningTotals::default(),
            declared,
            root_closed: false,
        })
    }

    fn position(&self) -> String {
        format!("byte {}", self.reader.buffer_position())
    }

    fn error(&self, code: ProblemCode, message: impl Into<String>) -> FileError {
        FileError::new(code, self.position(), message)
    }

    fn place(&self) -> Place {
        *self.stack.last().expect("the stack always holds Outside")
    }

    fn read_line(&mut self) -> Result<Option<RawLine>, FileError> {
        loop {
            self.buffer.clear();
            let read = self.reader.read_resolved_event_into(&mut self.buffer);
            let (namespace, event) = match read {
                Ok((ResolveResult::Bound(ns), event)) => (Some(ns.as_ref() == NAMESPACE.as_bytes()), event.into_owned()),
                Ok((_, event)) => (None, event.into_owned()),
                Err(quick_xml::Error::Io(io)) if is_too_long(&io) => {
                    let limit = self.max_record_bytes;
                    return Err(self.error(
                        ProblemCode::RecordTooLong,
                        format!("a tag, text, comment or other piece of the document is longer than {limit} bytes"),
                    ));
                }
                Err(error) => {
                    return Err(self.error(ProblemCode::XmlMalformed, format!("the file is not well-formed XML: {}", describe(&error))))
                }
            };
            self.reader.get_mut().get_mut().mark();
            match event {
                Event::DocType(_) => {
                    return Err(
                        self.error(ProblemCode::XmlDoctypeForbidden, "a DOCTYPE is not allowed in a remittance (no entities are expanded)")
                    )
                }
                Event::Start(element) => {
                    if namespace != Some(true) {
                        return Err(self.error(ProblemCode::XmlNamespace, format!("elements must be in the namespace {NAMESPACE}")));
                    }
                    self.start(&element)?;
                }
                Event::End(_) => {
                    if let Some(line) = self.end()? {
                        return Ok(Some(line));
                    }
                }
                Event::Text(text) => {
                    let text = text.unescape().map_err(|e| self.error(ProblemCode::XmlMalformed, format!("bad text: {}", describe(&e))))?;
                    self.add_text(&text)?;
                }
                Event::CData(data) => {
                    let text =
                        std::str::from_utf8(&data).map_err(|_| self.error(ProblemCode::XmlMalformed, "text is not UTF-8"))?.to_owned();
                    self.add_text(&text)?;
                }
                Event::Eof => {
                    if !self.root_closed {
                        return Err(self.error(ProblemCode::XmlMalformed, "the document ends before </Remittance>"));
                    }
                    self.check_totals()?;
                    return Ok(None);
                }
                // Empty elements are expanded into Start and End by the reader's configuration.
                Event::Empty(_) => return Err(self.error(ProblemCode::XmlMalformed, "unexpected empty element")),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            }
        }
    }

    fn start(&mut self, element: &BytesStart<'_>) -> Result<(), FileError> {
        if self.stack.len() > MAX_DEPTH {
            return Err(self.error(ProblemCode::XmlMalformed, "elements are nested too deep"));
        }
        let name = String::from_utf8_lossy(element.local_name().as_ref()).into_owned();
        let next = match (self.place(), name.as_str()) {
            (Place::Outside, "Remittance") if !self.root_closed => Place::Remittance,
            (Place::Remittance, "Header") => Place::Header,
            (Place::Remittance, "Employer") => {
                self.employer_fein = self.attribute(element, "fein")?;
                self.employer_name = self.attribute(element, "name")?;
                Place::Employer
            }
            (Place::Employer, "Payment") => {
                self.payment = RawLine {
                    line: self.totals.line_count + 1,
                    employer_fein: self.employer_fein.clone(),
                    employer_name: self.employer_name.clone(),
                    // LastName is required: present-but-empty until the element is read.
                    last_name: Some(String::new()),
                    pay_date_style: Some(DateStyle::Iso),
                    ..RawLine::default()
                };
                Place::Payment
            }
            (Place::Header, name) => match HEADER_ELEMENTS.iter().find(|(n, _)| *n == name) {
                Some((_, leaf)) => Place::Leaf(*leaf),
                None => return Err(self.error(ProblemCode::XmlUnknownElement, format!("unknown element <{}> in <Header>", excerpt(name)))),
            },
            (Place::Payment, name) => match PAYMENT_ELEMENTS.iter().find(|(n, _)| *n == name) {
                Some((_, leaf)) => Place::Leaf(*leaf),
                None => return Err(self.error(ProblemCode::XmlUnknownElement, format!("unknown element <{}> in <Payment>", excerpt(name)))),
            },
            (place, name) => {
                return Err(self.error(ProblemCode::XmlUnknownElement, format!("unexpected element <{}> in {place:?}", excerpt(name))))
            }
        };
        self.text.clear();
        self.stack.push(next);
        Ok(())
    }

    /// Closes the current element; returns the line when a `Payment` closes.
    fn end(&mut self) -> Result<Option<RawLine>, FileError> {
        let place = self.stack.pop().expect("an end matches a start");
        let text = std::mem::take(&mut self.text);
        match place {
            Place::Leaf(leaf) => {
                let slot = match leaf {
                    Leaf::BatchId => &mut self.header_batch_id,
                    Leaf::LineCount => &mut self.header_line_count,
                    Leaf::TotalAmount => &mut self.header_total,
                    Leaf::CaseNumber => &mut self.payment.case_number,
                    Leaf::EmployeeSsn => &mut self.payment.employee_ssn,
                    Leaf::LastName => &mut self.payment.last_name,
                    Leaf::FirstName => &mut self.payment.first_name,
                    Leaf::EmployeeId => &mut self.payment.employee_id,
                    Leaf::PayDate => &mut self.payment.pay_date,
                    Leaf::Amount => &mut self.payment.amount,
                    Leaf::Fips => &mut self.payment.fips_code,
                    Leaf::MedicalSupport => &mut self.payment.medical_support,
                    Leaf::EmploymentTerminated => &mut self.payment.employment_terminated,
                };
                *slot = Some(text);
                Ok(None)
            }
            Place::Payment => {
                let line = std::mem::take(&mut self.payment);
                self.totals.observe(&line);
                Ok(Some(line))
            }
            Place::Employer => {
                self.employer_fein = None;
                self.employer_name = None;
                Ok(None)
            }
            Place::Header => {
                if let Some(batch_id) = self.header_batch_id.as_deref().filter(|b| b.trim() != self.batch_id) {
                    return Err(self.error(
                        ProblemCode::XmlBatchIdMismatch,
                        format!("the header's BatchId `{}` is not the submitted batch id `{}`", excerpt(batch_id), self.batch_id),
                    ));
                }
                Ok(None)
            }
            Place::Remittance => {
                self.root_closed = true;
                Ok(None)
            }
            Place::Outside => Ok(None),
        }
    }

    fn add_text(&mut self, text: &str) -> Result<(), FileError> {
        if !matches!(self.place(), Place::Leaf(_)) {
            return if text.trim().is_empty() {
                Ok(())
            } else {
                Err(self.error(ProblemCode::XmlMalformed, "text outside an element that takes text"))
            };
        }
        check_characters(text).map_err(|message| self.error(ProblemCode::XmlMalformed, message))?;
        if self.text.len() + text.len() > MAX_TEXT_BYTES {
            return Err(self.error(ProblemCode::RecordTooLong, format!("an element's text is longer than {MAX_TEXT_BYTES} bytes")));
        }
        self.text.push_str(text);
        Ok(())
    }

    fn attribute(&self, element: &BytesStart<'_>, name: &str) -> Result<Option<String>, FileError> {
        for attribute in element.attributes() {
            let attribute = attribute.map_err(|e| self.error(ProblemCode::XmlMalformed, format!("bad attribute: {e}")))?;
            if attribute.key.local_name().as_ref() == name.as_bytes() {
                let value = attribute
                    .unescape_value()
                    .map_err(|e| self.error(ProblemCode::XmlMalformed, format!("bad attribute: {}", describe(&e))))?;
                check_characters(&value).map_err(|message| self.error(ProblemCode::XmlMalformed, message))?;
                return Ok(Some(value.into_owned()));
            }
        }
        Ok(None)
    }

    fn check_totals(&self) -> Result<(), FileError> {
        let end = "end of file";
        let count = self.header_line_count.as_deref().map(str::trim);
        let total = self.header_total.as_deref().map(str::trim);
        let (Some(count), Some(total)) = (count, total) else {
            return Err(FileError::new(ProblemCode::ControlTotalsMissing, end, "the Header must carry LineCount and TotalAmount"));
        };
        let count: u64 =
            count.parse().map_err(|_| FileError::new(ProblemCode::ControlTotalsInvalid, end, "LineCount is not a whole number"))?;
        let total = Money::parse(total).map_err(|e| FileError::new(ProblemCode::ControlTotalsInvalid, end, format!("TotalAmount: {e}")))?;
        self.totals.check(DeclaredTotals { line_count: Some(count), total: Some(total) })?;
        self.totals.check(self.declared)
    }
}

/// XML 1.0 allows no control character but tab, line feed and carriage return (not even
/// as a character reference), nor U+FFFE and U+FFFF; quick-xml leaves that check to us.
fn check_characters(text: &str) -> Result<(), String> {
    match text.chars().find(|&c| (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')) {
        Some(c) => Err(format!("the character U+{:04X} is not allowed in XML", u32::from(c))),
        None => Ok(()),
    }
}

/// A parser error, without the document's text.
fn describe(error: &impl std::fmt::Display) -> String {
    let text = error.to_string();
    // quick-xml errors may quote the document; keep only their first clause, short.
    text.chars().take(120).collect()
}

/// Writes lines as a remittance XML, for tests and tools. Each line's employer starts an
/// `Employer` element when it changes.
pub fn write_xml(batch_id: &str, lines: &[RawLine]) -> Vec<u8> {
    use quick_xml::escape::escape;
    let total: Money = lines.iter().filter_map(|l| l.amount.as_deref().and_then(|a| Money::parse(a).ok())).sum();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Remittance xmlns=\"{NAMESPACE}\">\n  <Header>\n    <BatchId>{}</BatchId>\n    \
         <LineCount>{}</LineCount>\n    <TotalAmount>{total}</TotalAmount>\n  </Header>\n",
        escape(batch_id),
        lines.len()
    );
    let mut employer: Option<(Option<String>, Option<String>)> = None;
    for line in lines {
        let this = (line.employer_fein.clone(), line.employer_name.clone());
        if employer.as_ref() != Some(&this) {
            if employer.is_some() {
                xml.push_str("  </Employer>\n");
            }
            let attribute = |name: &str, value: &Option<String>| {
                value.as_ref().map(|v| format!(" {name}=\"{}\"", escape(v.as_str()))).unwrap_or_default()
            };
            xml.push_str(&format!("  <Employer{}{}>\n", attribute("fein", &this.0), attribute("name", &this.1)));
            employer = Some(this);
        }
        xml.push_str("    <Payment>\n");
        let fields = [
            ("CaseNumber", &line.case_number),
            ("EmployeeSSN", &line.employee_ssn),
            ("LastName", &line.last_name),
            ("FirstName", &line.first_name),
            ("EmployeeId", &line.employee_id),
            ("PayDate", &line.pay_date),
            ("Amount", &line.amount),
            ("FIPS", &line.fips_code),
            ("MedicalSupport", &line.medical_support),
            ("EmploymentTerminated", &line.employment_terminated),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                xml.push_str(&format!("      <{name}>{}</{name}>\n", escape(value.as_str())));
            }
        }
        xml.push_str("    </Payment>\n");
    }
    if employer.is_some() {
        xml.push_str("  </Employer>\n");
    }
    xml.push_str("</Remittance>\n");
    xml.into_bytes()
}

impl<R: Read> LineSource for XmlLines<R> {
    fn next_line(&mut self) -> Result<Option<RawLine>, FileError> {
        self.read_line()
    }
}
