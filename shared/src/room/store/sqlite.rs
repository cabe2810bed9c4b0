//! [`Sql`] over `rusqlite` (bundled SQLite), for running the room's real schema and statements
//! natively: the room's unit tests, the store suite and the convergence property all use it.

use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

use super::sql::{Row, Sql, SqlValue, StoreError};

/// A SQLite database, in memory or in a file.
pub struct Sqlite {
    conn: Connection,
}

impl Sqlite {
    /// A fresh in-memory database.
    pub fn memory() -> Result<Self, StoreError> {
        Self::checked(Connection::open_in_memory().map_err(StoreError::new)?)
    }

    /// A database file (created if missing): reopening the same path is how tests restart a room.
    pub fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        Self::checked(Connection::open(path).map_err(StoreError::new)?)
    }

    /// Refuses a SQLite built without what the room's schema uses, so a test never passes on a
    /// schema that silently failed to build.
    fn checked(conn: Connection) -> Result<Self, StoreError> {
        require_fts5(|option| {
            conn.query_row("SELECT sqlite_compileoption_used(?1)", [option], |r| {
                r.get(0)
            })
            .map_err(StoreError::new)
        })?;
        // JSON functions (json_extract, json_set, json_each) are built in since SQLite 3.38.
        conn.query_row("SELECT json_extract('{\"a\":1}', '$.a')", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| StoreError(format!("this SQLite has no JSON functions: {e}")))?;
        Ok(Sqlite { conn })
    }
}

/// Refuses a SQLite build without FTS5, asking it through `compiled_with` (a compile option's
/// name, without `SQLITE_`, to whether the build used it).
fn require_fts5(
    compiled_with: impl Fn(&str) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    if !compiled_with("ENABLE_FTS5")? {
        return Err(StoreError::new(
            "this SQLite was built without FTS5, which the room's search index needs",
        ));
    }
    Ok(())
}

fn bind(params: &[SqlValue]) -> Vec<Value> {
    params
        .iter()
        .map(|p| match p {
            SqlValue::Null => Value::Null,
            SqlValue::Integer(v) => Value::Integer(*v),
            SqlValue::Real(v) => Value::Real(*v),
            SqlValue::Text(v) => Value::Text(v.clone()),
        })
        .collect()
}

impl Sql for Sqlite {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<(), StoreError> {
        let mut statement = self.conn.prepare_cached(sql).map_err(StoreError::new)?;
        // `raw_execute` would refuse nothing either; stepping through rows keeps statements
        // that happen to return rows (a `SELECT` used for its effect) working.
        let mut rows = statement
            .query(rusqlite::params_from_iter(bind(params)))
            .map_err(StoreError::new)?;
        while rows.next().map_err(StoreError::new)?.is_some() {}
        Ok(())
    }

    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        let mut statement = self.conn.prepare_cached(sql).map_err(StoreError::new)?;
        let columns = statement.column_count();
        let mut rows = statement
            .query(rusqlite::params_from_iter(bind(params)))
            .map_err(StoreError::new)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(StoreError::new)? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i).map_err(StoreError::new)? {
                    ValueRef::Null => SqlValue::Null,
                    ValueRef::Integer(v) => SqlValue::Integer(v),
                    ValueRef::Real(v) => SqlValue::Real(v),
                    ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(_) => {
                        return Err(StoreError(format!("column {i}: unexpected blob")))
                    }
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    fn transaction<T>(
        &self,
        work: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A savepoint nests, and rolls back everything `work` did if it fails part way.
        self.conn
            .execute_batch("SAVEPOINT room_write")
            .map_err(StoreError::new)?;
        match work() {
            Ok(value) => {
                self.conn
                    .execute_batch("RELEASE room_write")
                    .map_err(StoreError::new)?;
                Ok(value)
            }
            Err(e) => {
                let _ = self
                    .conn
                    .execute_batch("ROLLBACK TO room_write; RELEASE room_write");
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_built_without_fts5_is_refused_by_name_and_the_bundled_one_has_it() {
        let refused = require_fts5(|option| Ok(option != "ENABLE_FTS5")).expect_err("refused");
        assert!(refused.to_string().contains("without FTS5"), "{refused}");
        assert!(require_fts5(|_| Err(StoreError::new("unreadable"))).is_err());
        Sqlite::memory().expect("the bundled SQLite has FTS5 and JSON");
    }
}
