//! Checks a template draft against Meta's rules before it is submitted, so a dashboard
//! user sees every problem at once instead of one rejection per review round.
//!
//! Each [`Problem`] names the input (`path`, in the camelCase of the GraphQL input), a
//! stable `code` and a sentence the user can act on. What is enforced:
//!
//! - `name`: 1 to 512 of `a-z 0-9 _` (`NAME_REQUIRED`, `NAME_TOO_LONG`, `NAME_INVALID`).
//! - `language`: `ll`, `lll`, `ll_RR` (region: two uppercase letters or digits)
//!   (`LANGUAGE_REQUIRED`, `LANGUAGE_INVALID`).
//! - Parameters anywhere: `{{1}}` in positional templates, `{{name}}` (a lowercase letter,
//!   then lowercase letters, digits, `_`) in named ones. Other braces that look like a
//!   parameter (`{{ 1 }}`, `{{}}`, `{{1}`, `{1}}`, `{{01}}`, `{{Name}}`) are
//!   `PARAMETER_MALFORMED`; the other format's parameters are `PARAMETER_FORMAT_MISMATCH`.
//! - Text header: text of at most 60 characters on one line, at most one parameter
//!   (`{{1}}` when positional) with an example (`HEADER_TEXT_REQUIRED`,
//!   `HEADER_TOO_LONG`, `HEADER_NEWLINE`, `HEADER_TOO_MANY_PARAMETERS`,
//!   `PARAMETERS_NOT_SEQUENTIAL`, `EXAMPLE_MISSING`, `EXAMPLE_UNEXPECTED`).
//! - Media header: no text, an http(s) sample URL (`HEADER_TEXT_NOT_ALLOWED`,
//!   `EXAMPLE_MISSING`, `EXAMPLE_URL_INVALID`).
//! - Body: 1 to 1024 characters (`BODY_REQUIRED`, `BODY_TOO_LONG`); not starting or
//!   ending with a parameter (`BODY_STARTS_WITH_PARAMETER`, `BODY_ENDS_WITH_PARAMETER`);
//!   at least 2 words of fixed text per parameter occurrence, a word being a run of
//!   non-space characters with a letter or digit (`BODY_TOO_MANY_PARAMETERS`).
//!   Positional: numbers 1..n without gaps (`PARAMETERS_NOT_SEQUENTIAL`), one non-empty
//!   example per distinct parameter (`EXAMPLE_MISSING`, `EXAMPLE_UNEXPECTED`), no
//!   `namedExamples` (`NAMED_EXAMPLES_NOT_ALLOWED`). Named: exactly one non-empty example
//!   per parameter (`EXAMPLE_MISSING`, `EXAMPLE_DUPLICATE`, `EXAMPLE_UNEXPECTED`), no
//!   positional `examples` (`POSITIONAL_EXAMPLES_NOT_ALLOWED`).
//! - Footer: 1 to 60 characters, no parameters (`FOOTER_EMPTY`, `FOOTER_TOO_LONG`,
//!   `FOOTER_PARAMETER_NOT_ALLOWED`).
//! - Buttons: at most 10 (`TOO_MANY_BUTTONS`), 2 URL (`TOO_MANY_URL_BUTTONS`), 1 phone
//!   (`TOO_MANY_PHONE_NUMBER_BUTTONS`), 1 copy-code (`TOO_MANY_COPY_CODE_BUTTONS`);
//!   quick replies grouped before or after the others (`BUTTONS_NOT_GROUPED`); texts of
//!   1 to 25 characters (`BUTTON_TEXT_REQUIRED`, `BUTTON_TEXT_TOO_LONG`), distinct
//!   ignoring case (`BUTTON_TEXT_DUPLICATE`). URL: http(s), at most 2000 characters, at
//!   most one parameter, `{{1}}` at the very end, then a full sample URL starting with
//!   the fixed part (`BUTTON_URL_INVALID`, `BUTTON_URL_TOO_LONG`,
//!   `URL_TOO_MANY_PARAMETERS`, `URL_PARAMETER_INVALID`, `URL_PARAMETER_NOT_AT_END`,
//!   `EXAMPLE_MISSING`, `EXAMPLE_URL_INVALID`, `EXAMPLE_UNEXPECTED`). Phone: `+` then
//!   8 to 15 digits (`PHONE_NUMBER_INVALID`). Copy code: 1 to 15 ASCII letters or digits
//!   (`EXAMPLE_MISSING`, `COPY_CODE_TOO_LONG`, `COPY_CODE_INVALID`).
//! - `AUTHENTICATION` templates: no header at all (`AUTHENTICATION_HEADER_NOT_ALLOWED`)
//!   and no URL or phone buttons (`AUTHENTICATION_BUTTON_NOT_ALLOWED`); the footer and
//!   body follow the common rules. `MARKETING` and `UTILITY` have no extra rules.
//!
//! Lengths count characters, not bytes, so emoji count as one each.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use super::model::{Body, Button, Category, Header, HeaderFormat, ParameterFormat, TemplateDraft};

const NAME_MAX: usize = 512;
const HEADER_MAX: usize = 60;
const BODY_MAX: usize = 1024;
const FOOTER_MAX: usize = 60;
const BUTTONS_MAX: usize = 10;
const URL_BUTTONS_MAX: usize = 2;
const BUTTON_TEXT_MAX: usize = 25;
const URL_MAX: usize = 2000;
const COPY_CODE_MAX: usize = 15;
/// Meta rejects bodies that are mostly parameters; two words each keeps clear of that.
const WORDS_PER_PARAMETER: usize = 2;
/// A URL button's only allowed parameter, a suffix given at send time.
pub const URL_SUFFIX: &str = "{{1}}";

/// One thing wrong with a draft.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The input at fault, e.g. `components.buttons[3].url`.
    pub path: String,
    /// A stable SCREAMING_SNAKE code for clients to branch on.
    pub code: &'static str,
    /// A sentence for the dashboard user.
    pub message: String,
}

/// Every problem of the draft, in input order, or `Ok` when Meta should accept it.
pub fn validate(draft: &TemplateDraft) -> Result<(), Vec<Problem>> {
    let mut report = Report::default();
    let format = draft.parameter_format;
    let components = &draft.components;
    check_name(&draft.name, &mut report);
    check_language(&draft.language, &mut report);
    if let Some(header) = &components.header {
        check_header(header, format, &mut report);
    }
    check_body(&components.body, format, &mut report);
    if let Some(footer) = &components.footer {
        check_footer(footer, format, &mut report);
    }
    check_buttons(&components.buttons, &mut report);
    if draft.category == Category::Authentication {
        check_authentication(draft, &mut report);
    }
    report.finish()
}

/// A piece of template text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Fixed text.
    Text(&'a str),
    /// A well-formed parameter.
    Param(Param<'a>),
    /// Braces that look like a parameter but are not one, verbatim.
    Malformed(&'a str),
}

/// A well-formed `{{…}}` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param<'a> {
    /// `{{3}}`
    Positional(usize),
    /// `{{first_name}}`
    Named(&'a str),
}

impl Param<'_> {
    /// What a send calls the parameter: `"3"` or `"first_name"`.
    pub fn name(&self) -> String {
        match self {
            Self::Positional(n) => n.to_string(),
            Self::Named(name) => (*name).to_owned(),
        }
    }

    /// Whether templates of this format may use the parameter.
    pub fn fits(&self, format: ParameterFormat) -> bool {
        matches!(
            (self, format),
            (Self::Positional(_), ParameterFormat::Positional)
                | (Self::Named(_), ParameterFormat::Named)
        )
    }
}

/// Written as in the template, `{{3}}`, so messages can quote it.
impl fmt::Display for Param<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Positional(n) => write!(f, "{{{{{n}}}}}"),
            Self::Named(name) => write!(f, "{{{{{name}}}}}"),
        }
    }
}

/// Splits template text into fixed text, parameters and malformed brace fragments.
///
/// Lone braces are fixed text; `{{` or `}}` outside a well-formed parameter is not.
pub fn segments(text: &str) -> Vec<Segment<'_>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    // A lone `{` in the pending text, which a stray `}}` turns into `{1}}`.
    let mut lone_open = None;
    let mut i = 0;
    while i < bytes.len() {
        let doubled = bytes.get(i + 1) == Some(&bytes[i]);
        match bytes[i] {
            b'{' if doubled => {
                push_text(&mut out, &text[start..i]);
                let (segment, end) = opening(text, i);
                out.push(segment);
                (i, start, lone_open) = (end, end, None);
            }
            b'}' if doubled => {
                let from = lone_open.unwrap_or(i);
                push_text(&mut out, &text[start..from]);
                out.push(Segment::Malformed(&text[from..i + 2]));
                (i, start, lone_open) = (i + 2, i + 2, None);
            }
            b'{' => (i, lone_open) = (i + 1, Some(i)),
            b'}' | b'\n' => (i, lone_open) = (i + 1, None),
            _ => i += 1,
        }
    }
    push_text(&mut out, &text[start..]);
    out
}

fn push_text<'a>(out: &mut Vec<Segment<'a>>, text: &'a str) {
    if !text.is_empty() {
        out.push(Segment::Text(text));
    }
}

/// The segment that starts with the `{{` at `at`, and where it ends.
fn opening(text: &str, at: usize) -> (Segment<'_>, usize) {
    let rest = &text[at + 2..];
    let inner = &rest[..rest.find(['{', '}', '\n']).unwrap_or(rest.len())];
    let after = &rest[inner.len()..];
    let inner_end = at + 2 + inner.len();
    if after.starts_with("}}") {
        let raw = &text[at..inner_end + 2];
        let segment = param(inner).map_or(Segment::Malformed(raw), Segment::Param);
        (segment, inner_end + 2)
    } else if after.starts_with('}') {
        (Segment::Malformed(&text[at..inner_end + 1]), inner_end + 1)
    } else {
        // Unclosed: quote only the word it is attached to, not the rest of the text.
        let word = inner.split(char::is_whitespace).next().unwrap_or("");
        let end = at + 2 + word.len();
        (Segment::Malformed(&text[at..end]), end)
    }
}

/// A parameter's inner text: digits without a leading zero, or a lowercase name.
fn param(inner: &str) -> Option<Param<'_>> {
    if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
        return if inner.starts_with('0') {
            None
        } else {
            inner.parse().ok().map(Param::Positional)
        };
    }
    let mut chars = inner.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    valid.then_some(Param::Named(inner))
}

/// The well-formed parameters of a text, in order, repeats included.
pub fn params(text: &str) -> impl Iterator<Item = Param<'_>> {
    segments(text).into_iter().filter_map(|s| match s {
        Segment::Param(p) => Some(p),
        _ => None,
    })
}

#[derive(Default)]
struct Report(Vec<Problem>);

impl Report {
    fn add(&mut self, path: impl Into<String>, code: &'static str, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            code,
            message: message.into(),
        });
    }

    fn finish(self) -> Result<(), Vec<Problem>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

/// `1 word`, `2 words`: messages read naturally whatever the number.
fn count_of(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn check_name(name: &str, report: &mut Report) {
    let len = chars(name);
    if len == 0 {
        report.add("name", "NAME_REQUIRED", "Give the template a name.");
        return;
    }
    if len > NAME_MAX {
        report.add(
            "name",
            "NAME_TOO_LONG",
            format!("The name has {len} characters; the limit is {NAME_MAX}."),
        );
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        report.add(
            "name",
            "NAME_INVALID",
            format!(
                "The name may contain only lowercase letters, digits and underscores; \
                 {bad:?} is not allowed."
            ),
        );
    }
}

fn check_language(language: &str, report: &mut Report) {
    if language.is_empty() {
        report.add("language", "LANGUAGE_REQUIRED", "Choose a language.");
    } else if !is_language_code(language) {
        report.add(
            "language",
            "LANGUAGE_INVALID",
            format!("{language:?} is not a language code such as en, en_US or pt_BR."),
        );
    }
}

/// `en`, `fil`, `en_US`: the shape of Meta's codes, not a list that would go stale.
fn is_language_code(code: &str) -> bool {
    let (base, region) = match code.split_once('_') {
        Some((base, region)) => (base, Some(region)),
        None => (code, None),
    };
    let base_ok = (2..=3).contains(&base.len()) && base.bytes().all(|b| b.is_ascii_lowercase());
    let region_ok = region.is_none_or(|r| {
        r.len() == 2
            && r.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    base_ok && region_ok
}

/// Reports malformed fragments and parameters of the wrong format, once each.
fn check_params(text: &str, path: &str, format: ParameterFormat, report: &mut Report) {
    let mut seen = BTreeSet::new();
    for segment in segments(text) {
        match segment {
            Segment::Malformed(raw) if seen.insert(raw.to_owned()) => {
                report.add(path, "PARAMETER_MALFORMED", malformed_message(raw, format));
            }
            Segment::Param(p) if !p.fits(format) && seen.insert(p.to_string()) => {
                report.add(path, "PARAMETER_FORMAT_MISMATCH", mismatch_message(p));
            }
            _ => {}
        }
    }
}

fn malformed_message(raw: &str, format: ParameterFormat) -> String {
    let expected = match format {
        ParameterFormat::Positional => "{{1}}, {{2}}… without spaces",
        ParameterFormat::Named => "{{name}} with lowercase letters, digits and underscores",
    };
    format!("{raw:?} is not a valid parameter; write parameters as {expected}.")
}

fn mismatch_message(p: Param<'_>) -> String {
    match p {
        Param::Positional(_) => format!(
            "{p} is a numbered parameter, but this template uses named parameters \
             such as {{{{first_name}}}}."
        ),
        Param::Named(_) => format!(
            "{p} is a named parameter, but this template uses numbered parameters \
             ({{{{1}}}}, {{{{2}}}}…)."
        ),
    }
}

fn check_header(header: &Header, format: ParameterFormat, report: &mut Report) {
    match header.format {
        HeaderFormat::Text => check_text_header(header, format, report),
        media => check_media_header(header, media, report),
    }
}

fn check_text_header(header: &Header, format: ParameterFormat, report: &mut Report) {
    const PATH: &str = "components.header.text";
    let text = header.text.as_deref().unwrap_or("");
    if is_blank(text) {
        report.add(PATH, "HEADER_TEXT_REQUIRED", "A text header needs text.");
        return;
    }
    let len = chars(text);
    if len > HEADER_MAX {
        report.add(
            PATH,
            "HEADER_TOO_LONG",
            format!("The header has {len} characters; the limit is {HEADER_MAX}."),
        );
    }
    if text.contains(['\n', '\r']) {
        report.add(PATH, "HEADER_NEWLINE", "The header must be a single line.");
    }
    check_params(text, PATH, format, report);
    let found: Vec<Param<'_>> = params(text).collect();
    if found.len() > 1 {
        report.add(
            PATH,
            "HEADER_TOO_MANY_PARAMETERS",
            format!(
                "The header may have at most one parameter; it has {}.",
                found.len()
            ),
        );
    }
    if let Some(p @ Param::Positional(n)) = found.first().copied()
        && n != 1
    {
        report.add(
            PATH,
            "PARAMETERS_NOT_SEQUENTIAL",
            format!("The header's parameter must be {{{{1}}}}, not {p}."),
        );
    }
    check_header_example(header, found.first().copied(), report);
}

fn check_header_example(header: &Header, param: Option<Param<'_>>, report: &mut Report) {
    const PATH: &str = "components.header.example";
    let example = header.example.as_deref().unwrap_or("");
    match param {
        Some(p) if is_blank(example) => report.add(
            PATH,
            "EXAMPLE_MISSING",
            format!("Give an example value for the header's parameter {p}."),
        ),
        None if !is_blank(example) => report.add(
            PATH,
            "EXAMPLE_UNEXPECTED",
            "The header has no parameter, so it takes no example; remove the example \
             or add a parameter.",
        ),
        _ => {}
    }
}

fn check_media_header(header: &Header, media: HeaderFormat, report: &mut Report) {
    let kind = media_name(media);
    if header.text.as_deref().is_some_and(|t| !is_blank(t)) {
        report.add(
            "components.header.text",
            "HEADER_TEXT_NOT_ALLOWED",
            format!("This {kind} header has no text; remove the text or use a text header."),
        );
    }
    const PATH: &str = "components.header.example";
    match header.example.as_deref().filter(|e| !is_blank(e)) {
        None => report.add(
            PATH,
            "EXAMPLE_MISSING",
            format!("This {kind} header needs a sample {kind} URL (http or https)."),
        ),
        Some(url) if !is_http_url(url) => report.add(
            PATH,
            "EXAMPLE_URL_INVALID",
            format!("{url:?} is not an http or https URL."),
        ),
        Some(_) => {}
    }
}

fn media_name(format: HeaderFormat) -> &'static str {
    match format {
        HeaderFormat::Text => "text",
        HeaderFormat::Image => "image",
        HeaderFormat::Video => "video",
        HeaderFormat::Document => "document",
    }
}

/// `http(s)://host…` without spaces: enough to catch typos, Meta checks the rest.
fn is_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !host.is_empty() && !url.chars().any(char::is_whitespace)
}

fn check_body(body: &Body, format: ParameterFormat, report: &mut Report) {
    const PATH: &str = "components.body.text";
    let text = body.text.trim();
    if text.is_empty() {
        report.add(PATH, "BODY_REQUIRED", "The body must not be empty.");
        return;
    }
    let len = chars(&body.text);
    if len > BODY_MAX {
        report.add(
            PATH,
            "BODY_TOO_LONG",
            format!("The body has {len} characters; the limit is {BODY_MAX}."),
        );
    }
    check_params(text, PATH, format, report);
    let segments = segments(text);
    check_placement(&segments, report);
    check_density(&segments, report);
    match format {
        ParameterFormat::Positional => check_positional_body(body, &segments, report),
        ParameterFormat::Named => check_named_body(body, &segments, report),
    }
}

/// Meta rejects bodies that open or close on a parameter.
fn check_placement(segments: &[Segment<'_>], report: &mut Report) {
    const PATH: &str = "components.body.text";
    if let Some(Segment::Param(p)) = segments.first() {
        report.add(
            PATH,
            "BODY_STARTS_WITH_PARAMETER",
            format!("The body must not start with a parameter; put some text before {p}."),
        );
    }
    if let Some(Segment::Param(p)) = segments.last() {
        report.add(
            PATH,
            "BODY_ENDS_WITH_PARAMETER",
            format!("The body must not end with a parameter; put some text after {p}."),
        );
    }
}

fn check_density(segments: &[Segment<'_>], report: &mut Report) {
    let count = segments
        .iter()
        .filter(|s| matches!(s, Segment::Param(_)))
        .count();
    let words: usize = segments
        .iter()
        .map(|s| match s {
            Segment::Text(t) => word_count(t),
            _ => 0,
        })
        .sum();
    let needed = count * WORDS_PER_PARAMETER;
    if words < needed {
        report.add(
            "components.body.text",
            "BODY_TOO_MANY_PARAMETERS",
            format!(
                "The body has {} but only {} of fixed text; use at least \
                 {WORDS_PER_PARAMETER} words per parameter ({needed} words) or fewer \
                 parameters.",
                count_of(count, "parameter"),
                count_of(words, "word"),
            ),
        );
    }
}

/// Words are runs of non-space characters with a letter or digit, so `-` or `:` alone
/// do not count.
fn word_count(text: &str) -> usize {
    text.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count()
}

fn check_positional_body(body: &Body, segments: &[Segment<'_>], report: &mut Report) {
    let numbers: BTreeSet<usize> = segments
        .iter()
        .filter_map(|s| match s {
            Segment::Param(Param::Positional(n)) => Some(*n),
            _ => None,
        })
        .collect();
    check_sequence(&numbers, report);
    check_positional_examples(&body.examples, numbers.len(), report);
    if !body.named_examples.is_empty() {
        report.add(
            "components.body.namedExamples",
            "NAMED_EXAMPLES_NOT_ALLOWED",
            "This template uses numbered parameters; give their examples in order in \
             examples, not in namedExamples.",
        );
    }
}

fn check_sequence(numbers: &BTreeSet<usize>, report: &mut Report) {
    let max = numbers.last().copied().unwrap_or(0);
    let missing: Vec<String> = (1..=max)
        .filter(|n| !numbers.contains(n))
        .map(|n| Param::Positional(n).to_string())
        .collect();
    if missing.is_empty() {
        return;
    }
    let verb = if missing.len() == 1 { "is" } else { "are" };
    report.add(
        "components.body.text",
        "PARAMETERS_NOT_SEQUENTIAL",
        format!(
            "Number the parameters from {{{{1}}}} without gaps; {} {verb} missing.",
            missing.join(", ")
        ),
    );
}

fn check_positional_examples(examples: &[String], count: usize, report: &mut Report) {
    let path = |k: usize| format!("components.body.examples[{k}]");
    for (k, example) in examples.iter().enumerate() {
        if k >= count {
            report.add(
                path(k),
                "EXAMPLE_UNEXPECTED",
                format!(
                    "The body has {}, so example {} fills nothing; remove it.",
                    count_of(count, "parameter"),
                    k + 1
                ),
            );
        } else if is_blank(example) {
            report.add(
                path(k),
                "EXAMPLE_MISSING",
                format!("The example for {} is empty.", Param::Positional(k + 1)),
            );
        }
    }
    for k in examples.len()..count {
        report.add(
            path(k),
            "EXAMPLE_MISSING",
            format!("Give an example value for {}.", Param::Positional(k + 1)),
        );
    }
}

fn check_named_body(body: &Body, segments: &[Segment<'_>], report: &mut Report) {
    let mut names: Vec<&str> = Vec::new();
    for segment in segments {
        if let Segment::Param(Param::Named(name)) = segment
            && !names.contains(name)
        {
            names.push(name);
        }
    }
    if !body.examples.is_empty() {
        report.add(
            "components.body.examples",
            "POSITIONAL_EXAMPLES_NOT_ALLOWED",
            "This template uses named parameters; give their examples by name in \
             namedExamples, not in examples.",
        );
    }
    let mut given: HashMap<&str, usize> = HashMap::new();
    for (k, named) in body.named_examples.iter().enumerate() {
        let name = named.name.as_str();
        let path = |field: &str| format!("components.body.namedExamples[{k}].{field}");
        let p = Param::Named(name);
        if let Some(first) = given.get(name) {
            report.add(
                path("name"),
                "EXAMPLE_DUPLICATE",
                format!(
                    "{p} already has an example (number {}); keep one.",
                    first + 1
                ),
            );
        } else if !names.contains(&name) {
            report.add(
                path("name"),
                "EXAMPLE_UNEXPECTED",
                format!("The body has no parameter {p}; remove this example or use it."),
            );
        } else if is_blank(&named.example) {
            report.add(
                path("example"),
                "EXAMPLE_MISSING",
                format!("The example for {p} is empty."),
            );
        }
        given.entry(name).or_insert(k);
    }
    for name in names.iter().filter(|n| !given.contains_key(*n)) {
        report.add(
            "components.body.namedExamples",
            "EXAMPLE_MISSING",
            format!("Give an example value for {}.", Param::Named(name)),
        );
    }
}

fn check_footer(footer: &str, format: ParameterFormat, report: &mut Report) {
    const PATH: &str = "components.footer";
    if is_blank(footer) {
        report.add(
            PATH,
            "FOOTER_EMPTY",
            "The footer is empty; remove it or give it some text.",
        );
        return;
    }
    let len = chars(footer);
    if len > FOOTER_MAX {
        report.add(
            PATH,
            "FOOTER_TOO_LONG",
            format!("The footer has {len} characters; the limit is {FOOTER_MAX}."),
        );
    }
    for segment in segments(footer) {
        match segment {
            Segment::Param(p) => report.add(
                PATH,
                "FOOTER_PARAMETER_NOT_ALLOWED",
                format!("The footer cannot have parameters; remove {p}."),
            ),
            Segment::Malformed(raw) => {
                report.add(PATH, "PARAMETER_MALFORMED", malformed_message(raw, format));
            }
            Segment::Text(_) => {}
        }
    }
}

fn button_path(index: usize, field: &str) -> String {
    format!("components.buttons[{index}].{field}")
}

fn check_buttons(buttons: &[Button], report: &mut Report) {
    check_button_counts(buttons, report);
    check_grouping(buttons, report);
    check_duplicate_texts(buttons, report);
    for (i, button) in buttons.iter().enumerate() {
        match button {
            Button::QuickReply { text } => check_button_text(i, text, report),
            Button::Url { text, url, example } => {
                check_button_text(i, text, report);
                check_url_button(i, url, example.as_deref(), report);
            }
            Button::PhoneNumber { text, phone_number } => {
                check_button_text(i, text, report);
                check_phone_number(i, phone_number, report);
            }
            Button::CopyCode { example } => check_copy_code(i, example, report),
        }
    }
}

fn check_button_counts(buttons: &[Button], report: &mut Report) {
    let count = |f: fn(&Button) -> bool| buttons.iter().filter(|b| f(b)).count();
    let limits: [(usize, usize, &'static str, &str); 4] = [
        (buttons.len(), BUTTONS_MAX, "TOO_MANY_BUTTONS", "button"),
        (
            count(|b| matches!(b, Button::Url { .. })),
            URL_BUTTONS_MAX,
            "TOO_MANY_URL_BUTTONS",
            "URL button",
        ),
        (
            count(|b| matches!(b, Button::PhoneNumber { .. })),
            1,
            "TOO_MANY_PHONE_NUMBER_BUTTONS",
            "phone number button",
        ),
        (
            count(|b| matches!(b, Button::CopyCode { .. })),
            1,
            "TOO_MANY_COPY_CODE_BUTTONS",
            "copy-code button",
        ),
    ];
    for (actual, limit, code, what) in limits {
        if actual > limit {
            report.add(
                "components.buttons",
                code,
                format!(
                    "A template may have at most {}; this one has {actual}.",
                    count_of(limit, what)
                ),
            );
        }
    }
}

/// Meta shows quick replies as one block, so they must not be split by other buttons.
fn check_grouping(buttons: &[Button], report: &mut Report) {
    let is_quick = |b: &Button| matches!(b, Button::QuickReply { .. });
    let mut changes = 0;
    for (i, pair) in buttons.windows(2).enumerate() {
        if is_quick(&pair[0]) != is_quick(&pair[1]) {
            changes += 1;
        }
        if changes == 2 {
            report.add(
                format!("components.buttons[{}]", i + 1),
                "BUTTONS_NOT_GROUPED",
                format!(
                    "Keep quick-reply buttons together, all before or all after the other \
                     buttons; button {} breaks the group.",
                    i + 2
                ),
            );
            return;
        }
    }
}

fn button_text(button: &Button) -> Option<&str> {
    match button {
        Button::QuickReply { text }
        | Button::Url { text, .. }
        | Button::PhoneNumber { text, .. } => Some(text),
        Button::CopyCode { .. } => None,
    }
}

/// Recipients cannot tell `Yes` from `yes` apart, so case does not make texts differ.
fn check_duplicate_texts(buttons: &[Button], report: &mut Report) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, button) in buttons.iter().enumerate() {
        let Some(text) = button_text(button).filter(|t| !is_blank(t)) else {
            continue;
        };
        let key = text.trim().to_lowercase();
        if let Some(first) = seen.get(&key) {
            report.add(
                button_path(i, "text"),
                "BUTTON_TEXT_DUPLICATE",
                format!(
                    "Button {} has the same text as button {} ({:?}); button texts must differ.",
                    i + 1,
                    first + 1,
                    text.trim()
                ),
            );
        } else {
            seen.insert(key, i);
        }
    }
}

fn check_button_text(i: usize, text: &str, report: &mut Report) {
    let path = button_path(i, "text");
    let len = chars(text);
    if is_blank(text) {
        report.add(path, "BUTTON_TEXT_REQUIRED", "A button needs text.");
    } else if len > BUTTON_TEXT_MAX {
        report.add(
            path,
            "BUTTON_TEXT_TOO_LONG",
            format!("The button text has {len} characters; the limit is {BUTTON_TEXT_MAX}."),
        );
    }
}

fn check_url_button(i: usize, url: &str, example: Option<&str>, report: &mut Report) {
    let path = button_path(i, "url");
    let suffixed = url.strip_suffix(URL_SUFFIX);
    if !is_http_url(suffixed.unwrap_or(url)) {
        report.add(
            &path,
            "BUTTON_URL_INVALID",
            format!("{url:?} is not an http or https URL."),
        );
    }
    let len = chars(url);
    if len > URL_MAX {
        report.add(
            &path,
            "BUTTON_URL_TOO_LONG",
            format!("The URL has {len} characters; the limit is {URL_MAX}."),
        );
    }
    check_url_params(&path, url, report);
    let has_param = params(url).next().is_some();
    // Other parameters are reported above; the example is checked against a clean base.
    let base = suffixed.filter(|base| !base.contains("{{"));
    check_url_example(i, has_param, base, example.unwrap_or(""), report);
}

fn check_url_params(path: &str, url: &str, report: &mut Report) {
    let segments = segments(url);
    let mut found = 0;
    for (k, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Malformed(raw) => report.add(
                path,
                "PARAMETER_MALFORMED",
                format!("{raw:?} is not a valid parameter; a URL can only end in {URL_SUFFIX}."),
            ),
            Segment::Param(p) => {
                found += 1;
                if *p != Param::Positional(1) {
                    report.add(
                        path,
                        "URL_PARAMETER_INVALID",
                        format!("A URL's parameter must be {URL_SUFFIX}, not {p}."),
                    );
                } else if k + 1 != segments.len() {
                    report.add(
                        path,
                        "URL_PARAMETER_NOT_AT_END",
                        format!("{URL_SUFFIX} must be at the very end of the URL."),
                    );
                }
            }
            Segment::Text(_) => {}
        }
    }
    if found > 1 {
        report.add(
            path,
            "URL_TOO_MANY_PARAMETERS",
            format!("A URL may have at most one parameter; this one has {found}."),
        );
    }
}

/// `base` is the URL before a final `{{1}}`, which the example must extend.
fn check_url_example(
    i: usize,
    has_param: bool,
    base: Option<&str>,
    example: &str,
    report: &mut Report,
) {
    let path = button_path(i, "example");
    let sample = format!("{}12345", base.unwrap_or("https://example.com/"));
    let extends_base = base.is_none_or(|b| example.starts_with(b) && example.len() > b.len());
    if !has_param {
        if !is_blank(example) {
            report.add(
                path,
                "EXAMPLE_UNEXPECTED",
                format!("This URL has no {URL_SUFFIX}, so it takes no example; remove it."),
            );
        }
    } else if is_blank(example) {
        report.add(
            path,
            "EXAMPLE_MISSING",
            format!("A URL ending in {URL_SUFFIX} needs a full sample URL, e.g. {sample}."),
        );
    } else if !is_http_url(example) || !extends_base {
        report.add(
            path,
            "EXAMPLE_URL_INVALID",
            format!(
                "The example must be a full URL: the button's URL with a sample value in \
                 place of {URL_SUFFIX}, e.g. {sample}."
            ),
        );
    }
}

fn check_phone_number(i: usize, phone: &str, report: &mut Report) {
    let digits = phone.strip_prefix('+').unwrap_or("");
    let valid = (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        report.add(
            button_path(i, "phoneNumber"),
            "PHONE_NUMBER_INVALID",
            format!(
                "{phone:?} is not an international phone number: write + and 8 to 15 digits, \
                 e.g. +14155550123."
            ),
        );
    }
}

fn check_copy_code(i: usize, code: &str, report: &mut Report) {
    let path = button_path(i, "example");
    let len = chars(code);
    if is_blank(code) {
        report.add(
            path,
            "EXAMPLE_MISSING",
            "A copy-code button needs a sample code.",
        );
    } else if len > COPY_CODE_MAX {
        report.add(
            path,
            "COPY_CODE_TOO_LONG",
            format!("The code has {len} characters; the limit is {COPY_CODE_MAX}."),
        );
    } else if !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        report.add(
            path,
            "COPY_CODE_INVALID",
            format!("{code:?} may contain only letters and digits."),
        );
    }
}

/// Authentication templates carry a one-time code; Meta allows no media or links there.
fn check_authentication(draft: &TemplateDraft, report: &mut Report) {
    let components = &draft.components;
    if components.header.is_some() {
        report.add(
            "components.header",
            "AUTHENTICATION_HEADER_NOT_ALLOWED",
            "Authentication templates have no header; remove it.",
        );
    }
    for (i, button) in components.buttons.iter().enumerate() {
        let kind = match button {
            Button::Url { .. } => "URL",
            Button::PhoneNumber { .. } => "phone number",
            _ => continue,
        };
        report.add(
            format!("components.buttons[{i}]"),
            "AUTHENTICATION_BUTTON_NOT_ALLOWED",
            format!(
                "Authentication templates cannot have {kind} buttons; remove button {}.",
                i + 1
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{Components, NamedExample};
    use super::*;

    fn positional() -> TemplateDraft {
        TemplateDraft {
            name: "order_update".into(),
            language: "en_US".into(),
            category: Category::Utility,
            parameter_format: ParameterFormat::Positional,
            components: Components {
                header: Some(text_header("Order {{1}}", Some("#1234"))),
                body: Body {
                    text: "Hi {{1}}, your order {{2}} is on its way. Track it below.".into(),
                    examples: vec!["Ana".into(), "#1234".into()],
                    named_examples: vec![],
                },
                footer: Some("Reply STOP to opt out".into()),
                buttons: vec![
                    quick("Thanks"),
                    quick("Stop"),
                    url(
                        "https://shop.example/track/{{1}}",
                        Some("https://shop.example/track/42"),
                    ),
                    phone("+14155550123"),
                    Button::CopyCode {
                        example: "SAVE10".into(),
                    },
                ],
            },
        }
    }

    fn named() -> TemplateDraft {
        let mut draft = positional();
        draft.parameter_format = ParameterFormat::Named;
        draft.components.header = Some(text_header("Hello {{first_name}}", Some("Ana")));
        draft.components.body = Body {
            text: "Hi {{first_name}}, order {{order_id}} ships today. Thanks again, \
                   {{first_name}}, for shopping with us!"
                .into(),
            examples: vec![],
            named_examples: vec![
                named_example("first_name", "Ana"),
                named_example("order_id", "42"),
            ],
        };
        draft
    }

    fn authentication() -> TemplateDraft {
        let mut draft = positional();
        draft.category = Category::Authentication;
        draft.components.header = None;
        draft.components.body = body("Your code is {{1}}. Do not share it.", &["123456"]);
        draft.components.buttons = vec![Button::CopyCode {
            example: "123456".into(),
        }];
        draft
    }

    fn text_header(text: &str, example: Option<&str>) -> Header {
        Header {
            format: HeaderFormat::Text,
            text: Some(text.into()),
            example: example.map(Into::into),
        }
    }

    fn media_header(format: HeaderFormat, text: Option<&str>, example: Option<&str>) -> Header {
        Header {
            format,
            text: text.map(Into::into),
            example: example.map(Into::into),
        }
    }

    fn body(text: &str, examples: &[&str]) -> Body {
        Body {
            text: text.into(),
            examples: examples.iter().map(|e| (*e).to_owned()).collect(),
            named_examples: vec![],
        }
    }

    fn named_example(name: &str, example: &str) -> NamedExample {
        NamedExample {
            name: name.into(),
            example: example.into(),
        }
    }

    fn quick(text: &str) -> Button {
        Button::QuickReply { text: text.into() }
    }

    fn url(url: &str, example: Option<&str>) -> Button {
        Button::Url {
            text: "Open".into(),
            url: url.into(),
            example: example.map(Into::into),
        }
    }

    fn phone(number: &str) -> Button {
        Button::PhoneNumber {
            text: "Call us".into(),
            phone_number: number.into(),
        }
    }

    fn with(mut draft: TemplateDraft, change: impl FnOnce(&mut TemplateDraft)) -> TemplateDraft {
        change(&mut draft);
        draft
    }

    fn found(draft: &TemplateDraft) -> Vec<(String, &'static str)> {
        match validate(draft) {
            Ok(()) => vec![],
            Err(problems) => problems.into_iter().map(|p| (p.path, p.code)).collect(),
        }
    }

    fn problems(draft: &TemplateDraft) -> Vec<Problem> {
        validate(draft).err().unwrap_or_default()
    }

    /// `None` for a valid draft, else the single (path, code) it must have.
    type Expected<'a> = Option<(&'a str, &'a str)>;

    fn check(case: &str, draft: &TemplateDraft, expected: Expected<'_>) {
        let expected: Vec<(String, &str)> = expected
            .map(|(path, code)| (path.to_owned(), code))
            .into_iter()
            .collect();
        assert_eq!(found(draft), expected, "case {case:?}");
    }

    #[test]
    fn baselines_are_valid() {
        assert_eq!(validate(&positional()), Ok(()));
        assert_eq!(validate(&named()), Ok(()));
        assert_eq!(validate(&authentication()), Ok(()));
    }

    #[test]
    fn names() {
        let long = "a".repeat(NAME_MAX);
        let too_long = "a".repeat(NAME_MAX + 1);
        let cases = [
            ("order_update_2", None),
            ("a", None),
            (long.as_str(), None),
            ("", Some("NAME_REQUIRED")),
            (too_long.as_str(), Some("NAME_TOO_LONG")),
            ("Order", Some("NAME_INVALID")),
            ("order-update", Some("NAME_INVALID")),
            ("order update", Some("NAME_INVALID")),
            ("commande_été", Some("NAME_INVALID")),
        ];
        for (name, code) in cases {
            let draft = with(positional(), |d| d.name = name.into());
            check(name, &draft, code.map(|c| ("name", c)));
        }
    }

    #[test]
    fn a_long_name_with_bad_characters_has_both_problems() {
        let draft = with(positional(), |d| d.name = "A".repeat(NAME_MAX + 1));
        let codes: Vec<_> = problems(&draft).into_iter().map(|p| p.code).collect();
        assert_eq!(codes, ["NAME_TOO_LONG", "NAME_INVALID"]);
    }

    #[test]
    fn languages() {
        let cases = [
            ("en", None),
            ("fil", None),
            ("en_US", None),
            ("pt_BR", None),
            ("zh_CN", None),
            ("es_41", None),
            ("", Some("LANGUAGE_REQUIRED")),
            ("EN", Some("LANGUAGE_INVALID")),
            ("e", Some("LANGUAGE_INVALID")),
            ("english", Some("LANGUAGE_INVALID")),
            ("en-US", Some("LANGUAGE_INVALID")),
            ("en_us", Some("LANGUAGE_INVALID")),
            ("en_USA", Some("LANGUAGE_INVALID")),
            ("en_", Some("LANGUAGE_INVALID")),
        ];
        for (language, code) in cases {
            let draft = with(positional(), |d| d.language = language.into());
            check(language, &draft, code.map(|c| ("language", c)));
        }
    }

    #[test]
    fn text_headers() {
        const TEXT: &str = "components.header.text";
        const EXAMPLE: &str = "components.header.example";
        let sixty_emoji = "🎉".repeat(HEADER_MAX);
        let too_long = "x".repeat(HEADER_MAX + 1);
        let cases = [
            ("Order {{1}}", Some("#1"), None),
            ("Big sale 🎉 today", None, None),
            (sixty_emoji.as_str(), None, None),
            (too_long.as_str(), None, Some((TEXT, "HEADER_TOO_LONG"))),
            ("", None, Some((TEXT, "HEADER_TEXT_REQUIRED"))),
            ("  ", None, Some((TEXT, "HEADER_TEXT_REQUIRED"))),
            ("Two\nlines", None, Some((TEXT, "HEADER_NEWLINE"))),
            (
                "{{1}} and {{1}}",
                Some("x"),
                Some((TEXT, "HEADER_TOO_MANY_PARAMETERS")),
            ),
            (
                "Order {{2}}",
                Some("x"),
                Some((TEXT, "PARAMETERS_NOT_SEQUENTIAL")),
            ),
            ("Order {{1}}", None, Some((EXAMPLE, "EXAMPLE_MISSING"))),
            ("Order {{1}}", Some(" "), Some((EXAMPLE, "EXAMPLE_MISSING"))),
            ("Order", Some("x"), Some((EXAMPLE, "EXAMPLE_UNEXPECTED"))),
            (
                "Hi {{name}}",
                Some("x"),
                Some((TEXT, "PARAMETER_FORMAT_MISMATCH")),
            ),
            ("Order {{1}", None, Some((TEXT, "PARAMETER_MALFORMED"))),
        ];
        for (text, example, expected) in cases {
            let draft = with(positional(), |d| {
                d.components.header = Some(text_header(text, example));
            });
            check(text, &draft, expected);
        }
    }

    #[test]
    fn a_header_without_text_needs_text() {
        let draft = with(positional(), |d| {
            d.components.header = Some(media_header(HeaderFormat::Text, None, None));
        });
        check(
            "none",
            &draft,
            Some(("components.header.text", "HEADER_TEXT_REQUIRED")),
        );
    }

    #[test]
    fn named_text_headers() {
        let cases = [
            ("Hello {{first_name}}", Some("Ana"), None),
            (
                "Hello {{1}}",
                Some("Ana"),
                Some(("components.header.text", "PARAMETER_FORMAT_MISMATCH")),
            ),
            (
                "Hello {{first_name}}",
                None,
                Some(("components.header.example", "EXAMPLE_MISSING")),
            ),
        ];
        for (text, example, expected) in cases {
            let draft = with(named(), |d| {
                d.components.header = Some(text_header(text, example))
            });
            check(text, &draft, expected);
        }
    }

    #[test]
    fn header_messages_give_the_numbers() {
        let draft = with(positional(), |d| {
            d.components.header = Some(text_header(&"x".repeat(61), None));
        });
        assert_eq!(
            problems(&draft)[0].message,
            "The header has 61 characters; the limit is 60."
        );
    }

    #[test]
    fn media_headers() {
        const EXAMPLE: &str = "components.header.example";
        let cases = [
            (
                HeaderFormat::Image,
                None,
                Some("https://cdn.example/a.png"),
                None,
            ),
            (
                HeaderFormat::Video,
                None,
                Some("http://cdn.example/a.mp4"),
                None,
            ),
            (
                HeaderFormat::Document,
                Some(""),
                Some("https://cdn.example/a.pdf"),
                None,
            ),
            (
                HeaderFormat::Image,
                None,
                None,
                Some((EXAMPLE, "EXAMPLE_MISSING")),
            ),
            (
                HeaderFormat::Image,
                None,
                Some(" "),
                Some((EXAMPLE, "EXAMPLE_MISSING")),
            ),
            (
                HeaderFormat::Image,
                None,
                Some("ftp://cdn.example/a.png"),
                Some((EXAMPLE, "EXAMPLE_URL_INVALID")),
            ),
            (
                HeaderFormat::Video,
                Some("Watch"),
                Some("https://cdn.example/a.mp4"),
                Some(("components.header.text", "HEADER_TEXT_NOT_ALLOWED")),
            ),
        ];
        for (format, text, example, expected) in cases {
            let draft = with(positional(), |d| {
                d.components.header = Some(media_header(format, text, example));
            });
            check(&format!("{format:?} {example:?}"), &draft, expected);
        }
    }

    #[test]
    fn segments_split_text_parameters_and_malformed_braces() {
        use Segment::{Malformed, Param as P, Text};
        let cases: [(&str, Vec<Segment<'_>>); 15] = [
            ("plain", vec![Text("plain")]),
            (
                "Hi {{1}}, bye",
                vec![Text("Hi "), P(Param::Positional(1)), Text(", bye")],
            ),
            ("{{first_name}}", vec![P(Param::Named("first_name"))]),
            (
                "{{a}}{{b2_c}}",
                vec![P(Param::Named("a")), P(Param::Named("b2_c"))],
            ),
            ("{{ 1 }}", vec![Malformed("{{ 1 }}")]),
            ("{{}}", vec![Malformed("{{}}")]),
            ("a {{1} b", vec![Text("a "), Malformed("{{1}"), Text(" b")]),
            ("a {1}} b", vec![Text("a "), Malformed("{1}}"), Text(" b")]),
            ("a {{1 b", vec![Text("a "), Malformed("{{1"), Text(" b")]),
            ("a }} b", vec![Text("a "), Malformed("}}"), Text(" b")]),
            ("{lone} braces", vec![Text("{lone} braces")]),
            (
                "{{01}} {{0}}",
                vec![Malformed("{{01}}"), Text(" "), Malformed("{{0}}")],
            ),
            (
                "{{Name}}{{1a}}",
                vec![Malformed("{{Name}}"), Malformed("{{1a}}")],
            ),
            (
                "x {{1}}}",
                vec![Text("x "), P(Param::Positional(1)), Text("}")],
            ),
            (
                "été {{12}} ✓",
                vec![Text("été "), P(Param::Positional(12)), Text(" ✓")],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(segments(text), expected, "text {text:?}");
        }
    }

    /// Every string of up to 5 characters from a tricky alphabet.
    fn tricky_texts() -> Vec<String> {
        const ALPHABET: [char; 7] = ['{', '}', '1', 'a', ' ', 'é', '\n'];
        let mut texts = vec![String::new()];
        let mut previous = texts.clone();
        for _ in 0..5 {
            previous = previous
                .iter()
                .flat_map(|t| ALPHABET.iter().map(move |c| format!("{t}{c}")))
                .collect();
            texts.extend(previous.iter().cloned());
        }
        texts
    }

    #[test]
    fn segments_cover_the_text_exactly() {
        for text in tricky_texts() {
            let joined: String = segments(&text)
                .iter()
                .map(|s| match s {
                    Segment::Text(t) | Segment::Malformed(t) => (*t).to_owned(),
                    Segment::Param(p) => p.to_string(),
                })
                .collect();
            assert_eq!(joined, text);
        }
    }

    #[test]
    fn parameters_display_as_written() {
        assert_eq!(Param::Positional(3).to_string(), "{{3}}");
        assert_eq!(Param::Named("first_name").to_string(), "{{first_name}}");
        assert_eq!(Param::Positional(3).name(), "3");
        assert_eq!(Param::Named("first_name").name(), "first_name");
    }

    fn body_case(draft: TemplateDraft, text: &str, examples: &[&str]) -> TemplateDraft {
        with(draft, |d| d.components.body = body(text, examples))
    }

    #[test]
    fn body_length_and_presence() {
        const TEXT: &str = "components.body.text";
        let longest = "a".repeat(BODY_MAX);
        let emoji = "🎉".repeat(BODY_MAX);
        let too_long = "a".repeat(BODY_MAX + 1);
        let cases = [
            (longest.as_str(), None),
            (emoji.as_str(), None),
            ("", Some((TEXT, "BODY_REQUIRED"))),
            (" \n ", Some((TEXT, "BODY_REQUIRED"))),
            (too_long.as_str(), Some((TEXT, "BODY_TOO_LONG"))),
        ];
        for (text, expected) in cases {
            check(text, &body_case(positional(), text, &[]), expected);
        }
        let draft = body_case(positional(), &too_long, &[]);
        assert_eq!(
            problems(&draft)[0].message,
            "The body has 1025 characters; the limit is 1024."
        );
    }

    #[test]
    fn malformed_body_braces_are_quoted() {
        for fragment in ["{{ 1 }}", "{{}}", "{{1}", "{1}}"] {
            let text = format!("Hi there {fragment}, your order is ready.");
            let draft = body_case(positional(), &text, &[]);
            let problems = problems(&draft);
            assert_eq!(problems.len(), 1, "{fragment}: {problems:?}");
            assert_eq!(problems[0].path, "components.body.text");
            assert_eq!(problems[0].code, "PARAMETER_MALFORMED");
            assert!(
                problems[0].message.contains(fragment),
                "{fragment} not in {:?}",
                problems[0].message
            );
        }
    }

    #[test]
    fn body_parameter_placement_and_density() {
        const TEXT: &str = "components.body.text";
        let cases = [
            ("Your code for today is {{1}}.", None),
            ("Hello {{1}} friend.", None),
            ("Hi {{1}}, yes {{1}} again and again.", None),
            (
                "{{1}} is your code for the order today.",
                Some((TEXT, "BODY_STARTS_WITH_PARAMETER")),
            ),
            (
                "  {{1}} is your code for the order today.",
                Some((TEXT, "BODY_STARTS_WITH_PARAMETER")),
            ),
            (
                "Your code for the order today is {{1}}",
                Some((TEXT, "BODY_ENDS_WITH_PARAMETER")),
            ),
            (
                "Your code for the order today is {{1}} \n",
                Some((TEXT, "BODY_ENDS_WITH_PARAMETER")),
            ),
            ("Hi {{1}} - .", Some((TEXT, "BODY_TOO_MANY_PARAMETERS"))),
        ];
        for (text, expected) in cases {
            check(text, &body_case(positional(), text, &["x"]), expected);
        }
    }

    #[test]
    fn density_counts_every_occurrence() {
        let draft = body_case(positional(), "Dear {{1}}, {{2}} {{1}} ok.", &["a", "b"]);
        let problems = problems(&draft);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].code, "BODY_TOO_MANY_PARAMETERS");
        assert_eq!(
            problems[0].message,
            "The body has 3 parameters but only 2 words of fixed text; use at least 2 words \
             per parameter (6 words) or fewer parameters."
        );
    }

    #[test]
    fn positional_body_parameters() {
        const TEXT: &str = "components.body.text";
        let cases: [(&str, &[&str], Expected<'_>); 8] = [
            ("Hi {{2}}, meet {{1}} today please.", &["a", "b"], None),
            (
                "Hi {{1}}, order {{3}} ships soon, thanks.",
                &["a", "b"],
                Some((TEXT, "PARAMETERS_NOT_SEQUENTIAL")),
            ),
            (
                "Hi {{2}} there friend.",
                &["a"],
                Some((TEXT, "PARAMETERS_NOT_SEQUENTIAL")),
            ),
            (
                "Hi {{1}}, order {{2}} ships soon.",
                &["a"],
                Some(("components.body.examples[1]", "EXAMPLE_MISSING")),
            ),
            (
                "Hi {{1}}, order {{2}} ships soon.",
                &["a", ""],
                Some(("components.body.examples[1]", "EXAMPLE_MISSING")),
            ),
            (
                "Hi {{1}}, order {{2}} ships soon.",
                &["a", "b", "c"],
                Some(("components.body.examples[2]", "EXAMPLE_UNEXPECTED")),
            ),
            (
                "Hi {{name}}, your order ships soon.",
                &[],
                Some((TEXT, "PARAMETER_FORMAT_MISMATCH")),
            ),
            (
                "Hi there, your order ships soon.",
                &["a"],
                Some(("components.body.examples[0]", "EXAMPLE_UNEXPECTED")),
            ),
        ];
        for (text, examples, expected) in cases {
            check(text, &body_case(positional(), text, examples), expected);
        }
    }

    #[test]
    fn gaps_are_named_in_the_message() {
        let draft = body_case(
            positional(),
            "Hi {{1}}, order {{4}} ships soon, thanks a lot.",
            &["a", "b"],
        );
        assert_eq!(
            problems(&draft)[0].message,
            "Number the parameters from {{1}} without gaps; {{2}}, {{3}} are missing."
        );
    }

    #[test]
    fn positional_bodies_take_no_named_examples() {
        let draft = with(positional(), |d| {
            d.components.body.named_examples = vec![named_example("first_name", "Ana")];
        });
        check(
            "named examples",
            &draft,
            Some((
                "components.body.namedExamples",
                "NAMED_EXAMPLES_NOT_ALLOWED",
            )),
        );
    }

    #[test]
    fn named_body_parameters() {
        let cases: [(&str, Vec<NamedExample>, Expected<'_>); 6] = [
            (
                "Hi {{first_name}}, your order ships soon.",
                vec![named_example("first_name", "Ana")],
                None,
            ),
            (
                "Hi {{first_name}}, order {{1}} ships soon.",
                vec![named_example("first_name", "Ana")],
                Some(("components.body.text", "PARAMETER_FORMAT_MISMATCH")),
            ),
            (
                "Hi {{first_name}}, your order ships soon.",
                vec![],
                Some(("components.body.namedExamples", "EXAMPLE_MISSING")),
            ),
            (
                "Hi {{first_name}}, your order ships soon.",
                vec![
                    named_example("first_name", "Ana"),
                    named_example("first_name", "Bo"),
                ],
                Some(("components.body.namedExamples[1].name", "EXAMPLE_DUPLICATE")),
            ),
            (
                "Hi {{first_name}}, your order ships soon.",
                vec![
                    named_example("first_name", "Ana"),
                    named_example("city", "Lima"),
                ],
                Some((
                    "components.body.namedExamples[1].name",
                    "EXAMPLE_UNEXPECTED",
                )),
            ),
            (
                "Hi {{first_name}}, your order ships soon.",
                vec![named_example("first_name", " ")],
                Some((
                    "components.body.namedExamples[0].example",
                    "EXAMPLE_MISSING",
                )),
            ),
        ];
        for (text, named_examples, expected) in cases {
            let draft = with(named(), |d| {
                d.components.body = Body {
                    text: text.into(),
                    examples: vec![],
                    named_examples,
                };
            });
            check(text, &draft, expected);
        }
    }

    #[test]
    fn named_bodies_take_no_positional_examples() {
        let draft = with(named(), |d| d.components.body.examples = vec!["Ana".into()]);
        check(
            "examples",
            &draft,
            Some((
                "components.body.examples",
                "POSITIONAL_EXAMPLES_NOT_ALLOWED",
            )),
        );
    }

    #[test]
    fn footers() {
        const PATH: &str = "components.footer";
        let sixty_emoji = "🎉".repeat(FOOTER_MAX);
        let too_long = "x".repeat(FOOTER_MAX + 1);
        let cases = [
            ("Reply STOP to opt out", None),
            (sixty_emoji.as_str(), None),
            ("", Some((PATH, "FOOTER_EMPTY"))),
            (too_long.as_str(), Some((PATH, "FOOTER_TOO_LONG"))),
            ("Hi {{1}}", Some((PATH, "FOOTER_PARAMETER_NOT_ALLOWED"))),
            ("Hi {{1}", Some((PATH, "PARAMETER_MALFORMED"))),
        ];
        for (footer, expected) in cases {
            let draft = with(positional(), |d| d.components.footer = Some(footer.into()));
            check(footer, &draft, expected);
        }
    }

    fn quick_replies(n: usize) -> Vec<Button> {
        (0..n).map(|i| quick(&format!("Option {i}"))).collect()
    }

    fn with_buttons(buttons: Vec<Button>) -> TemplateDraft {
        with(positional(), |d| d.components.buttons = buttons)
    }

    #[test]
    fn button_counts() {
        const PATH: &str = "components.buttons";
        let two_urls = vec![
            url("https://a.example", None),
            url("https://b.example", None),
        ];
        let two_urls = with_buttons(
            two_urls
                .into_iter()
                .enumerate()
                .map(|(i, b)| match b {
                    Button::Url { url, .. } => Button::Url {
                        text: format!("Link {i}"),
                        url,
                        example: None,
                    },
                    other => other,
                })
                .collect(),
        );
        let mut three_urls = two_urls.clone();
        three_urls.components.buttons.push(Button::Url {
            text: "Link 2".into(),
            url: "https://c.example".into(),
            example: None,
        });
        let two_phones = with_buttons(vec![
            phone("+14155550123"),
            Button::PhoneNumber {
                text: "Call sales".into(),
                phone_number: "+14155550124".into(),
            },
        ]);
        let copy = || Button::CopyCode {
            example: "SAVE10".into(),
        };
        let cases = [
            ("ten", with_buttons(quick_replies(BUTTONS_MAX)), None),
            ("two urls", two_urls, None),
            (
                "eleven",
                with_buttons(quick_replies(BUTTONS_MAX + 1)),
                Some((PATH, "TOO_MANY_BUTTONS")),
            ),
            (
                "three urls",
                three_urls,
                Some((PATH, "TOO_MANY_URL_BUTTONS")),
            ),
            (
                "two phones",
                two_phones,
                Some((PATH, "TOO_MANY_PHONE_NUMBER_BUTTONS")),
            ),
            (
                "two codes",
                with_buttons(vec![copy(), copy()]),
                Some((PATH, "TOO_MANY_COPY_CODE_BUTTONS")),
            ),
        ];
        for (case, draft, expected) in cases {
            check(case, &draft, expected);
        }
        let draft = with_buttons(quick_replies(11));
        assert_eq!(
            problems(&draft)[0].message,
            "A template may have at most 10 buttons; this one has 11."
        );
    }

    #[test]
    fn count_messages_read_naturally() {
        let draft = body_case(positional(), "Hi {{1}} - .", &["x", "y"]);
        let messages: Vec<String> = problems(&draft).into_iter().map(|p| p.message).collect();
        assert_eq!(
            messages,
            [
                "The body has 1 parameter but only 1 word of fixed text; use at least 2 words \
                 per parameter (2 words) or fewer parameters.",
                "The body has 1 parameter, so example 2 fills nothing; remove it.",
            ]
        );
        let two_phones = with_buttons(vec![phone("+14155550123"), phone("+14155550124")]);
        assert_eq!(
            problems(&two_phones).first().map(|p| p.message.as_str()),
            Some("A template may have at most 1 phone number button; this one has 2.")
        );
    }

    #[test]
    fn button_texts() {
        const PATH: &str = "components.buttons[0].text";
        let longest = "x".repeat(BUTTON_TEXT_MAX);
        let too_long = "x".repeat(BUTTON_TEXT_MAX + 1);
        let cases = [
            (longest.as_str(), None),
            ("", Some((PATH, "BUTTON_TEXT_REQUIRED"))),
            (too_long.as_str(), Some((PATH, "BUTTON_TEXT_TOO_LONG"))),
        ];
        for (text, expected) in cases {
            check(text, &with_buttons(vec![quick(text)]), expected);
            let link = Button::Url {
                text: text.into(),
                url: "https://a.example".into(),
                example: None,
            };
            check(text, &with_buttons(vec![link]), expected);
            let call = Button::PhoneNumber {
                text: text.into(),
                phone_number: "+14155550123".into(),
            };
            check(text, &with_buttons(vec![call]), expected);
        }
    }

    #[test]
    fn quick_replies_are_grouped() {
        let q = || quick("Yes");
        let q2 = || quick("No");
        let u = || url("https://a.example", None);
        let p = || phone("+14155550123");
        let cases = [
            ("QQU", vec![q(), q2(), u()], None),
            ("UQQ", vec![u(), q(), q2()], None),
            ("UP", vec![u(), p()], None),
            ("QUQ", vec![q(), u(), q2()], Some("components.buttons[2]")),
            ("UQP", vec![u(), q(), p()], Some("components.buttons[2]")),
            (
                "QUPQ",
                vec![q(), u(), p(), q2()],
                Some("components.buttons[3]"),
            ),
        ];
        for (case, buttons, path) in cases {
            check(
                case,
                &with_buttons(buttons),
                path.map(|p| (p, "BUTTONS_NOT_GROUPED")),
            );
        }
    }

    #[test]
    fn button_texts_differ_ignoring_case() {
        let cases = [
            (vec![quick("Yes"), quick("No")], None),
            (
                vec![quick("Yes"), quick(" yes ")],
                Some(("components.buttons[1].text", "BUTTON_TEXT_DUPLICATE")),
            ),
            (
                vec![quick("Open"), url("https://a.example", None)],
                Some(("components.buttons[1].text", "BUTTON_TEXT_DUPLICATE")),
            ),
        ];
        for (buttons, expected) in cases {
            check("duplicates", &with_buttons(buttons), expected);
        }
    }

    #[test]
    fn url_buttons() {
        const URL: &str = "components.buttons[0].url";
        const EXAMPLE: &str = "components.buttons[0].example";
        let too_long = format!("https://a.example/{}", "x".repeat(URL_MAX));
        let cases = [
            ("https://a.example/track", None, None),
            ("HTTP://a.example", None, None),
            (
                "https://a.example/t/{{1}}",
                Some("https://a.example/t/42"),
                None,
            ),
            ("a.example/track", None, Some((URL, "BUTTON_URL_INVALID"))),
            ("ftp://a.example", None, Some((URL, "BUTTON_URL_INVALID"))),
            ("https://", None, Some((URL, "BUTTON_URL_INVALID"))),
            (
                "https://a.example/a b",
                None,
                Some((URL, "BUTTON_URL_INVALID")),
            ),
            (
                "{{1}}",
                Some("https://a.example/1"),
                Some((URL, "BUTTON_URL_INVALID")),
            ),
            (too_long.as_str(), None, Some((URL, "BUTTON_URL_TOO_LONG"))),
            (
                "https://a.example/{{2}}",
                Some("https://a.example/2"),
                Some((URL, "URL_PARAMETER_INVALID")),
            ),
            (
                "https://a.example/{{code}}",
                Some("https://a.example/2"),
                Some((URL, "URL_PARAMETER_INVALID")),
            ),
            (
                "https://a.example/{{1}}/page",
                Some("https://a.example/1/page"),
                Some((URL, "URL_PARAMETER_NOT_AT_END")),
            ),
            (
                "https://a.example/{{1}",
                None,
                Some((URL, "PARAMETER_MALFORMED")),
            ),
            (
                "https://a.example/{{1}}",
                None,
                Some((EXAMPLE, "EXAMPLE_MISSING")),
            ),
            (
                "https://a.example/{{1}}",
                Some("42"),
                Some((EXAMPLE, "EXAMPLE_URL_INVALID")),
            ),
            (
                "https://a.example/{{1}}",
                Some("https://b.example/42"),
                Some((EXAMPLE, "EXAMPLE_URL_INVALID")),
            ),
            (
                "https://a.example/{{1}}",
                Some("https://a.example/"),
                Some((EXAMPLE, "EXAMPLE_URL_INVALID")),
            ),
            (
                "https://a.example/a",
                Some("https://a.example/a"),
                Some((EXAMPLE, "EXAMPLE_UNEXPECTED")),
            ),
        ];
        for (link, example, expected) in cases {
            check(link, &with_buttons(vec![url(link, example)]), expected);
        }
    }

    #[test]
    fn a_url_has_at_most_one_parameter() {
        let button = url(
            "https://a.example/{{1}}/{{1}}",
            Some("https://a.example/1/2"),
        );
        let path = "components.buttons[0].url".to_owned();
        assert_eq!(
            found(&with_buttons(vec![button])),
            vec![
                (path.clone(), "URL_PARAMETER_NOT_AT_END"),
                (path, "URL_TOO_MANY_PARAMETERS"),
            ]
        );
    }

    #[test]
    fn phone_numbers() {
        const PATH: &str = "components.buttons[0].phoneNumber";
        let cases = [
            ("+14155550123", None),
            ("+12345678", None),
            ("+123456789012345", None),
            ("14155550123", Some((PATH, "PHONE_NUMBER_INVALID"))),
            ("+1234567", Some((PATH, "PHONE_NUMBER_INVALID"))),
            ("+1234567890123456", Some((PATH, "PHONE_NUMBER_INVALID"))),
            ("+1 415 555 0123", Some((PATH, "PHONE_NUMBER_INVALID"))),
            ("", Some((PATH, "PHONE_NUMBER_INVALID"))),
        ];
        for (number, expected) in cases {
            check(number, &with_buttons(vec![phone(number)]), expected);
        }
    }

    #[test]
    fn copy_codes() {
        const PATH: &str = "components.buttons[0].example";
        let longest = "A".repeat(COPY_CODE_MAX);
        let too_long = "A".repeat(COPY_CODE_MAX + 1);
        let cases = [
            ("SAVE10", None),
            (longest.as_str(), None),
            ("", Some((PATH, "EXAMPLE_MISSING"))),
            (too_long.as_str(), Some((PATH, "COPY_CODE_TOO_LONG"))),
            ("SAVE-10", Some((PATH, "COPY_CODE_INVALID"))),
            ("ÉTÉ10", Some((PATH, "COPY_CODE_INVALID"))),
        ];
        for (code, expected) in cases {
            let button = Button::CopyCode {
                example: code.into(),
            };
            check(code, &with_buttons(vec![button]), expected);
        }
    }

    #[test]
    fn authentication_templates() {
        let media = media_header(HeaderFormat::Image, None, Some("https://cdn.example/a.png"));
        let cases = [
            (
                "footer",
                with(authentication(), |d| {
                    d.components.footer = Some("Expires soon".into())
                }),
                None,
            ),
            (
                "quick reply",
                with(authentication(), |d| {
                    d.components.buttons.push(quick("Not me"))
                }),
                None,
            ),
            (
                "text header",
                with(authentication(), |d| {
                    d.components.header = Some(text_header("Your code", None));
                }),
                Some(("components.header", "AUTHENTICATION_HEADER_NOT_ALLOWED")),
            ),
            (
                "media header",
                with(authentication(), |d| d.components.header = Some(media)),
                Some(("components.header", "AUTHENTICATION_HEADER_NOT_ALLOWED")),
            ),
            (
                "url",
                with(authentication(), |d| {
                    d.components.buttons.push(url("https://a.example", None));
                }),
                Some(("components.buttons[1]", "AUTHENTICATION_BUTTON_NOT_ALLOWED")),
            ),
            (
                "phone",
                with(authentication(), |d| {
                    d.components.buttons.push(phone("+14155550123"));
                }),
                Some(("components.buttons[1]", "AUTHENTICATION_BUTTON_NOT_ALLOWED")),
            ),
        ];
        for (case, draft, expected) in cases {
            check(case, &draft, expected);
        }
    }

    #[test]
    fn marketing_has_no_extra_rules() {
        let draft = with(positional(), |d| d.category = Category::Marketing);
        assert_eq!(validate(&draft), Ok(()));
    }

    #[test]
    fn every_problem_is_reported_in_input_order() {
        let draft = with(positional(), |d| {
            d.name = String::new();
            d.language = "english".into();
            d.components.header = Some(text_header("", None));
            d.components.body = body("", &[]);
            d.components.footer = Some(String::new());
            d.components.buttons = vec![quick(""), phone("123")];
        });
        let expected = [
            ("name", "NAME_REQUIRED"),
            ("language", "LANGUAGE_INVALID"),
            ("components.header.text", "HEADER_TEXT_REQUIRED"),
            ("components.body.text", "BODY_REQUIRED"),
            ("components.footer", "FOOTER_EMPTY"),
            ("components.buttons[0].text", "BUTTON_TEXT_REQUIRED"),
            ("components.buttons[1].phoneNumber", "PHONE_NUMBER_INVALID"),
        ];
        let expected: Vec<(String, &str)> = expected
            .iter()
            .map(|(p, c)| ((*p).to_owned(), *c))
            .collect();
        assert_eq!(found(&draft), expected);
    }
}
