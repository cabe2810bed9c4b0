//! The room's [`Sql`] over the Durable Object's SQLite storage. Everything else about storage —
//! the schema, the statements, what an event does to the tables — is `shared::room::store`, the
//! same code the native tests run on real SQLite.

use shared::room::store::{Row, Sql, SqlValue, StoreError};
use worker::{SqlStorage, SqlStorageValue};

/// The Durable Object's SQLite. Statements run synchronously with no `await` between them
/// commit together (the runtime's implicit transaction), which is what makes a multi-statement
/// write atomic here. The rows each statement read and wrote add up in the second field, which
/// the object reports with its metrics (issue 12).
#[derive(Clone)]
pub struct DurableSql(pub SqlStorage, pub crate::metrics::client::SqlRows);

fn bind(params: &[SqlValue]) -> Vec<SqlStorageValue> {
    params
        .iter()
        .map(|p| match p {
            SqlValue::Null => SqlStorageValue::Null,
            SqlValue::Integer(v) => SqlStorageValue::Integer(*v),
            SqlValue::Real(v) => SqlStorageValue::Float(*v),
            SqlValue::Text(v) => SqlStorageValue::String(v.clone()),
        })
        .collect()
}

fn failed(e: worker::Error) -> StoreError {
    StoreError::new(e)
}

impl Sql for DurableSql {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<(), StoreError> {
        let cursor = self.0.exec(sql, bind(params)).map_err(failed)?;
        self.1.add(cursor.rows_read(), cursor.rows_written());
        Ok(())
    }

    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        let cursor = self.0.exec(sql, bind(params)).map_err(failed)?;
        let rows = cursor
            .raw()
            .map(|row| {
                let row = row.map_err(failed)?;
                row.into_iter()
                    .map(|value| match value {
                        SqlStorageValue::Null => Ok(SqlValue::Null),
                        SqlStorageValue::Integer(v) => Ok(SqlValue::Integer(v)),
                        SqlStorageValue::Float(v) => Ok(SqlValue::Real(v)),
                        SqlStorageValue::String(v) => Ok(SqlValue::Text(v)),
                        SqlStorageValue::Boolean(v) => Ok(SqlValue::Integer(i64::from(v))),
                        SqlStorageValue::Blob(_) => Err(StoreError::new("unexpected blob column")),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
            })
            .collect();
        // Counted once the rows were read: the cursor counts as it steps.
        self.1.add(cursor.rows_read(), cursor.rows_written());
        rows
    }
}
