//! Compiling a mapping expression, and finding where a broken one breaks.
//!
//! jsonata-core's parser errors carry no position, so the position is recovered from the
//! parser itself: prefixes of the source that end at a token boundary (before whitespace) are
//! parsed until one fails with an error that is not "the input ended too early"; the offending
//! token lies in the last chunk of that prefix.

use jsonata_core::Expression;
use jsonata_core::evaluator::EvaluatorOptions;
use jsonata_core::parser::{self, ParserError};

use crate::error::MappingError;

/// Compiles `source`, or reports the file, line, column and source line of the error.
pub(crate) fn compile(
    file: &str,
    source: &str,
    options: &EvaluatorOptions,
) -> Result<Expression, MappingError> {
    Expression::compile_with_options(source, options.clone()).map_err(|e| {
        let offset = error_offset(source, &e);
        let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[offset..]
            .find('\n')
            .map_or(source.len(), |i| offset + i);
        let line_text = &source[line_start..line_end];
        let column = source[line_start..offset].chars().count() + 1;
        MappingError::Compile {
            file: file.to_owned(),
            line: source[..offset].matches('\n').count() + 1,
            column,
            snippet: format!("{line_text}\n    {}^", " ".repeat(column - 1)),
            message: e.to_string(),
        }
    })
}

/// Whether a parse error only says that the input stopped too early.
fn ends_early(e: &ParserError) -> bool {
    match e {
        ParserError::UnexpectedEnd
        | ParserError::UnclosedString
        | ParserError::UnclosedComment
        | ParserError::UnclosedBacktick => true,
        ParserError::UnexpectedToken(t) => t == "Eof",
        ParserError::Expected { found, .. } => found == "Eof",
        _ => false,
    }
}

/// The byte offset at which the error is best reported.
fn error_offset(source: &str, error: &ParserError) -> usize {
    // Offsets where a prefix may end: before each whitespace character (token boundaries).
    let cuts = source
        .char_indices()
        .filter(|(_, c)| c.is_whitespace())
        .map(|(i, _)| i)
        .chain(std::iter::once(source.len()));
    if !ends_early(error) {
        let mut chunk_start = 0;
        for cut in cuts {
            if let Err(e) = parser::parse(&source[..cut])
                && !ends_early(&e)
            {
                return chunk_start;
            }
            chunk_start = source[cut..]
                .find(|c: char| !c.is_whitespace())
                .map_or(source.len(), |i| cut + i);
        }
        return source.len();
    }
    if !matches!(
        error,
        ParserError::UnclosedString | ParserError::UnclosedComment | ParserError::UnclosedBacktick
    ) {
        // A missing closing bracket or operand: report the end, where it was expected.
        return source
            .trim_end()
            .char_indices()
            .last()
            .map_or(0, |(i, _)| i);
    }
    // A string or comment was left open: report where it opened, i.e. the start of the chunk
    // after the last prefix that did not fail the same way.
    let same = |e: &ParserError| std::mem::discriminant(e) == std::mem::discriminant(error);
    let mut start = 0;
    for cut in cuts {
        match parser::parse(&source[..cut]) {
            Err(e) if same(&e) => {}
            _ => {
                start = source[cut..]
                    .find(|c: char| !c.is_whitespace())
                    .map_or(source.len(), |i| cut + i);
            }
        }
    }
    start.min(source.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locate(src: &str) -> (usize, usize) {
        match compile("x.jsonata", src, &EvaluatorOptions::default()) {
            Err(MappingError::Compile { line, column, .. }) => (line, column),
            Err(other) => panic!("expected a compile error, got {other}"),
            Ok(_) => panic!("expected a compile error"),
        }
    }

    #[test]
    fn a_bad_token_is_located_on_its_line() {
        assert_eq!(locate("(\n  $a := 1;\n  { 'x': $a + }\n)"), (3, 15));
        assert_eq!(locate("/* c */ {\n 'a': 1,\n 'b' 2 }"), (3, 6));
    }

    #[test]
    fn an_unclosed_string_is_located_where_it_opens() {
        assert_eq!(locate("{\n 'a': 1,\n 'b': \"abc }\n"), (3, 7));
    }
}
