//! Multi-row statements: many rows bound as parameters of one statement, so that a batch costs
//! a handful of round trips to the database rather than one per row.
//!
//! Two details make these cheap on both backends:
//! - **Placeholders.** On SQLite they are anonymous (`?`): the driver resolves every *named*
//!   parameter (`$n`) through `sqlite3_bind_parameter_name`, a linear search of the statement's
//!   parameter list, so a statement with thousands of `$n` would bind in quadratic time. On
//!   PostgreSQL they are `$n`, as everywhere else. Either way the arguments are bound in the
//!   order their placeholders are written.
//! - **Chunk sizes.** A batch is cut into chunks whose row counts are powers of two (and that stay
//!   under both databases' limits on bound parameters), so a batch of any size is made of a few
//!   distinct statement texts, each prepared once and kept in the connection's statement cache.

use std::fmt::Write as _;
use std::ops::Range;

use crate::db::{Arg, Dialect, Sql};
use crate::schema::Binder;

/// The most parameters one statement binds: SQLite's limit (32,766 since 3.32; PostgreSQL's is
/// 65,535).
pub(crate) const MAX_PARAMS: usize = 32_766;

/// A statement under construction, with its arguments in placeholder order.
#[derive(Debug)]
pub(crate) struct Statement {
    dialect: Dialect,
    sql: String,
    args: Vec<Arg>,
}

impl Statement {
    /// An empty statement for `dialect`.
    pub(crate) fn new(dialect: Dialect) -> Self {
        Statement {
            dialect,
            sql: String::new(),
            args: Vec::new(),
        }
    }

    /// Appends SQL text (never a value: values go through [`Statement::bind`]).
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Binds `arg` and writes its placeholder.
    pub(crate) fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        match self.dialect {
            Dialect::Sqlite => self.sql.push('?'),
            Dialect::Postgres => {
                // Writing to a String cannot fail.
                let _ = write!(self.sql, "${}", self.args.len());
            }
        }
        self
    }

    /// Binds JSON text and writes its placeholder, cast to `jsonb` on PostgreSQL (SQLite keeps
    /// JSON as text). The caller serialises once; nothing is cloned into a `Value`.
    pub(crate) fn bind_json_text(&mut self, json: String) -> &mut Self {
        self.bind(Arg::Text(Some(json)));
        if self.dialect == Dialect::Postgres {
            self.sql.push_str("::jsonb");
        }
        self
    }

    /// Writes `rows` as the rows of a `VALUES` list: `(…, …), (…, …)`.
    pub(crate) fn values<const N: usize>(
        &mut self,
        rows: impl IntoIterator<Item = [Arg; N]>,
    ) -> &mut Self {
        for (i, row) in rows.into_iter().enumerate() {
            self.sql.push_str(if i == 0 { "(" } else { ", (" });
            for (j, arg) in row.into_iter().enumerate() {
                if j > 0 {
                    self.sql.push_str(", ");
                }
                self.bind(arg);
            }
            self.sql.push(')');
        }
        self
    }

    /// The SQL and its arguments.
    pub(crate) fn finish(self) -> (Sql, Vec<Arg>) {
        (Sql::Built(self.sql), self.args)
    }
}

/// The right-hand side of `IN` for a list of ids. On SQLite it is one JSON array parameter read
/// with `json_each`: the statement text does not depend on how many ids there are (one cached
/// statement) and binds one parameter instead of hundreds of named ones. On PostgreSQL it is a
/// list of `$n`.
pub(crate) fn id_list(
    dialect: Dialect,
    binder: &mut Binder,
    ids: impl IntoIterator<Item = i64>,
) -> String {
    match dialect {
        Dialect::Sqlite => {
            let mut json = String::from("[");
            for (i, id) in ids.into_iter().enumerate() {
                if i > 0 {
                    json.push(',');
                }
                // Writing to a String cannot fail.
                let _ = write!(json, "{id}");
            }
            json.push(']');
            format!(
                "(SELECT value FROM json_each({}))",
                binder.bind(Arg::Text(Some(json)))
            )
        }
        Dialect::Postgres => {
            let placeholders: Vec<String> = ids
                .into_iter()
                .map(|id| binder.bind(Arg::Int(Some(id))))
                .collect();
            format!("({})", placeholders.join(", "))
        }
    }
}

/// Cuts `len` rows of `params_per_row` parameters each into chunks whose sizes are powers of
/// two, largest first, each binding at most [`MAX_PARAMS`] parameters (with `extra_params` more
/// per statement).
pub(crate) fn chunks(
    len: usize,
    params_per_row: usize,
    extra_params: usize,
) -> impl Iterator<Item = Range<usize>> {
    let fit = (MAX_PARAMS - extra_params) / params_per_row.max(1);
    // The largest power of two that fits (at least one row).
    let max_rows = if fit == 0 {
        1
    } else {
        1 << (usize::BITS - 1 - fit.leading_zeros())
    };
    let mut start = 0;
    std::iter::from_fn(move || {
        let left = len - start;
        if left == 0 {
            return None;
        }
        let size = (1 << (usize::BITS - 1 - left.leading_zeros())).min(max_rows);
        let range = start..start + size;
        start += size;
        Some(range)
    })
}

#[cfg(test)]
mod unit {
    use super::*;

    fn sizes(len: usize, per_row: usize) -> Vec<usize> {
        chunks(len, per_row, 1).map(|r| r.len()).collect()
    }

    #[test]
    fn chunks_are_powers_of_two_covering_every_row_once() {
        assert_eq!(sizes(0, 8), Vec::<usize>::new());
        assert_eq!(sizes(1, 8), vec![1]);
        assert_eq!(sizes(100, 8), vec![64, 32, 4]);
        assert_eq!(sizes(500, 3), vec![256, 128, 64, 32, 16, 4]);
        // 32,765 / 8 = 4,095 rows fit: chunks of 2,048.
        assert_eq!(sizes(5_000, 8), vec![2_048, 2_048, 512, 256, 128, 8]);
        let ranges: Vec<_> = chunks(1_234, 10, 1).collect();
        assert_eq!(ranges.first().map(|r| r.start), Some(0));
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(ranges.last().map(|r| r.end), Some(1_234));
    }

    #[test]
    fn placeholders_follow_the_dialect() {
        let mut sqlite = Statement::new(Dialect::Sqlite);
        sqlite.push("VALUES ");
        sqlite.values([
            [Arg::Int(Some(1)), Arg::Int(None)],
            [Arg::Int(Some(2)), Arg::Int(None)],
        ]);
        let (sql, args) = sqlite.finish();
        assert!(matches!(sql, Sql::Built(ref s) if s == "VALUES (?, ?), (?, ?)"));
        assert_eq!(args.len(), 4);

        let mut pg = Statement::new(Dialect::Postgres);
        pg.push("VALUES ");
        pg.values([[Arg::Int(Some(1))]]);
        pg.bind_json_text("{}".to_owned());
        let (sql, _) = pg.finish();
        assert!(matches!(sql, Sql::Built(ref s) if s == "VALUES ($1)$2::jsonb"));
    }
}
