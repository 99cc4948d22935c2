//! Limits on a document that the depth and complexity limits do not see.
//!
//! - **Nesting of the text.** The GraphQL parser recurses once per `[`, `{` or `(`: a few
//!   thousand nested list brackets in an argument overflow the stack and abort the whole
//!   server. The text is scanned before it is parsed and refused past [`MAX_NESTING`].
//! - **Aliases.** The complexity limit prices a field once, not by the page it returns:
//!   thirty aliases of `contacts(first: 100)` stay under it while they read three thousand
//!   rows. Aliases are counted as the document would run, fragments expanded (a fragment
//!   spread ten times counts ten times).

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// Brackets, braces and parentheses a document may nest; far above what the depth limit
/// lets run, far below what overflows the parser's stack.
pub const MAX_NESTING: usize = 128;

/// Refuses a text nested deeper than [`MAX_NESTING`], before anything parses it. Strings,
/// block strings and comments are skipped.
pub fn check_nesting(query: &str) -> Result<(), String> {
    let bytes = query.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    // An escaped triple quote does not end the block string.
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'[' | b'{' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!(
                        "the document nests brackets deeper than {MAX_NESTING} levels"
                    ));
                }
            }
            b']' | b'}' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Refuses a request nested deeper than [`MAX_NESTING`] or with more aliased fields than
/// `max_aliases`. Every transport calls it before executing (a schema extension would do
/// the same, but any extension makes async-graphql wrap every field's resolver, which cost
/// a contacts page of fifty a tenth of its time). The document is parsed here once and
/// execution reuses the parse; a document that does not parse is left to execution, which
/// reports why.
pub fn check(request: &mut async_graphql::Request, max_aliases: usize) -> Result<(), String> {
    check_nesting(&request.query)?;
    match request.parsed_query() {
        Ok(document) => check_aliases(document, max_aliases),
        Err(_) => Ok(()),
    }
}

/// Refuses a parsed document with more aliased fields than `max_aliases` (for a transport
/// that has checked the nesting and parsed the document itself).
pub fn check_aliases(document: &ExecutableDocument, max_aliases: usize) -> Result<(), String> {
    let count = count_aliases(document);
    if count > max_aliases {
        return Err(format!(
            "the query uses {count} aliased fields, more than the limit of {max_aliases}"
        ));
    }
    Ok(())
}

/// Aliased fields in the document's operations, with fragments expanded. Saturates; a
/// fragment that spreads itself counts as nothing here (validation refuses it).
pub fn count_aliases(document: &ExecutableDocument) -> usize {
    let mut memo = HashMap::new();
    document
        .operations
        .iter()
        .map(|(_, op)| in_set(document, &op.node.selection_set.node, &mut memo, 0))
        .fold(0, usize::saturating_add)
}

/// Selection sets followed when counting aliases (past it, validation refuses anyway).
const MAX_SELECTION_NESTING: usize = 64;

fn in_set(
    document: &ExecutableDocument,
    set: &SelectionSet,
    memo: &mut HashMap<String, usize>,
    nesting: usize,
) -> usize {
    if nesting > MAX_SELECTION_NESTING {
        return 0;
    }
    let mut count = 0usize;
    for selection in &set.items {
        let here = match &selection.node {
            Selection::Field(field) => usize::from(field.node.alias.is_some()).saturating_add(
                in_set(document, &field.node.selection_set.node, memo, nesting + 1),
            ),
            Selection::InlineFragment(inline) => {
                in_set(document, &inline.node.selection_set.node, memo, nesting + 1)
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match memo.get(name) {
                    Some(n) => *n,
                    None => {
                        // Marked first, so that a cycle ends at zero.
                        memo.insert(name.to_owned(), 0);
                        let n = document.fragments.get(name).map_or(0, |f| {
                            in_set(document, &f.node.selection_set.node, memo, nesting + 1)
                        });
                        memo.insert(name.to_owned(), n);
                        n
                    }
                }
            }
        };
        count = count.saturating_add(here);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(query: &str) -> usize {
        count_aliases(&async_graphql::parser::parse_query(query).unwrap())
    }

    #[test]
    fn aliases_are_counted_with_fragments_expanded() {
        assert_eq!(
            count("{ a: project { id } b: project { id } viewer { id } }"),
            2
        );
        assert_eq!(count("{ project { x: id } }"), 1);
        let spread =
            "{ a: project { ...F } b: project { ...F } } fragment F on Project { x: id y: id }";
        assert_eq!(count(spread), 2 + 2 * 2);
        let nested = "{ ...G } fragment G on Query { ... on Query { a: project { ...H } } } fragment H on Project { z: id }";
        assert_eq!(count(nested), 2);
        // A cycle (refused later by validation) does not loop here.
        assert_eq!(
            count("{ ...A } fragment A on Query { a: __typename ...A }"),
            1
        );
    }

    #[test]
    fn nesting_is_measured_outside_strings_and_comments() {
        let deep = |n: usize| format!("{{ f(x: {}1{}) }}", "[".repeat(n), "]".repeat(n));
        assert!(check_nesting(&deep(MAX_NESTING - 2)).is_ok());
        assert!(check_nesting(&deep(MAX_NESTING)).is_err());
        assert!(check_nesting(&deep(100_000)).is_err());
        let quoted = format!("{{ f(x: \"{}\") }}", "[".repeat(10_000));
        assert!(check_nesting(&quoted).is_ok());
        let escaped = format!("{{ f(x: \"\\\"{}\") }}", "[".repeat(10_000));
        assert!(check_nesting(&escaped).is_ok());
        let block = format!("{{ f(x: \"\"\"a \\\"\"\" {} \"\"\") }}", "{".repeat(10_000));
        assert!(check_nesting(&block).is_ok());
        let comment = format!("{{ f # {}\n }}", "(".repeat(10_000));
        assert!(check_nesting(&comment).is_ok());
        // An unterminated string or comment ends the scan without a panic.
        assert!(check_nesting("{ f(x: \"[[[").is_ok());
        assert!(check_nesting("\"\"\"").is_ok());
        assert!(check_nesting("\"\\").is_ok());
    }
}
