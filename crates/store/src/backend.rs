//! The two database backends behind one store, and the dispatch between them.
//!
//! Queries are runtime-checked and mostly shared: the SQL is one string where the dialects
//! agree (`$N` placeholders work on both), and `with_pool!` expands one body per backend so
//! each is type-checked against its own driver.

use sqlx::{PgPool, SqlitePool};

/// An open pool of one dialect.
#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Backend {
    pub(crate) fn dialect(&self) -> crate::migrations::Dialect {
        match self {
            Self::Sqlite(_) => crate::migrations::Dialect::Sqlite,
            Self::Postgres(_) => crate::migrations::Dialect::Postgres,
        }
    }
}

/// Runs `$body` with `$pool` bound to the pool of whichever backend is open.
macro_rules! with_pool {
    ($backend:expr, |$pool:ident| $body:expr) => {
        match $backend {
            $crate::backend::Backend::Sqlite($pool) => $body,
            $crate::backend::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;
