//! The small SQL interface the room's store is written against.
//!
//! Two implementations: the Durable Object's `SqlStorage` (in `edge`, tens of lines) and
//! `rusqlite` (feature `sqlite`, for native tests on real SQLite). Everything else about storage —
//! the schema, every statement, what an event does to the tables — is written once, in
//! [`super::SqlStore`].

use std::fmt;

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A floating-point number (bm25 scores; the Durable Object also reports integers past
    /// JavaScript's safe range this way).
    Real(f64),
    /// Text.
    Text(String),
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}

impl From<u64> for SqlValue {
    fn from(v: u64) -> Self {
        // Sequence numbers and counts stay far below 2^63; "no limit" (u64::MAX) stays the
        // largest limit rather than wrapping to a negative one.
        SqlValue::Integer(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<u32> for SqlValue {
    fn from(v: u32) -> Self {
        SqlValue::Integer(i64::from(v))
    }
}

impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Integer(i64::from(v))
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// A storage failure: logged on the server, never shown to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// A failure described by `detail`.
    pub fn new(detail: impl fmt::Display) -> Self {
        StoreError(detail.to_string())
    }
}

/// One result row, its columns in the order the query selected them.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<SqlValue>);

impl Row {
    fn get(&self, i: usize) -> Result<&SqlValue, StoreError> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError(format!("column {i} is missing from the row")))
    }

    /// An integer column.
    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?
            .ok_or_else(|| StoreError(format!("column {i} is NULL, expected an integer")))
    }

    /// A nullable integer column.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.get(i)? {
            SqlValue::Null => Ok(None),
            SqlValue::Integer(v) => Ok(Some(*v)),
            // Whole numbers only: a fraction here is corrupt data, not a rounding matter.
            SqlValue::Real(v) if v.fract() == 0.0 => Ok(Some(*v as i64)),
            other => Err(StoreError(format!(
                "column {i}: expected an integer, found {other:?}"
            ))),
        }
    }

    /// A non-negative integer column (sequence numbers, counts).
    pub fn uint(&self, i: usize) -> Result<u64, StoreError> {
        u64::try_from(self.int(i)?)
            .map_err(|_| StoreError(format!("column {i}: negative where a count was expected")))
    }

    /// A nullable non-negative integer column.
    pub fn opt_uint(&self, i: usize) -> Result<Option<u64>, StoreError> {
        self.opt_int(i)?
            .map(|v| {
                u64::try_from(v).map_err(|_| {
                    StoreError(format!("column {i}: negative where a count was expected"))
                })
            })
            .transpose()
    }

    /// A floating-point column (integers read as their value).
    pub fn real(&self, i: usize) -> Result<f64, StoreError> {
        match self.get(i)? {
            SqlValue::Real(v) => Ok(*v),
            SqlValue::Integer(v) => Ok(*v as f64),
            other => Err(StoreError(format!(
                "column {i}: expected a number, found {other:?}"
            ))),
        }
    }

    /// A text column.
    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?
            .ok_or_else(|| StoreError(format!("column {i} is NULL, expected text")))
    }

    /// A nullable text column.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.get(i)? {
            SqlValue::Null => Ok(None),
            SqlValue::Text(v) => Ok(Some(v.clone())),
            other => Err(StoreError(format!(
                "column {i}: expected text, found {other:?}"
            ))),
        }
    }

    /// A JSON text column, decoded.
    pub fn json<T: serde::de::DeserializeOwned>(&self, i: usize) -> Result<T, StoreError> {
        let text = self.text(i)?;
        serde_json::from_str(&text)
            .map_err(|e| StoreError(format!("column {i}: corrupt JSON: {e}")))
    }

    /// A nullable JSON text column, decoded.
    pub fn opt_json<T: serde::de::DeserializeOwned>(
        &self,
        i: usize,
    ) -> Result<Option<T>, StoreError> {
        self.opt_text(i)?
            .map(|text| {
                serde_json::from_str(&text)
                    .map_err(|e| StoreError(format!("column {i}: corrupt JSON: {e}")))
            })
            .transpose()
    }
}

/// A SQLite connection, as the room's store needs it.
///
/// Statements run one at a time and synchronously. On a Durable Object, statements run with no
/// `await` between them commit together (its implicit transaction), which is what makes
/// [`super::SqlStore::append`] atomic there; [`Sql::transaction`] states that intent for
/// implementations that need it said.
pub trait Sql {
    /// Runs a statement that returns no rows.
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<(), StoreError>;

    /// Runs a query and returns all its rows.
    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError>;

    /// Runs `work` so that its statements are stored together or not at all. The default suits
    /// a runtime that already commits synchronous work as one transaction (Durable Objects).
    fn transaction<T>(
        &self,
        work: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        work()
    }
}

/// Builds a parameter list from values of mixed types: `params![seq, "text", None::<i64>]`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::room::store::SqlValue::from($value)),*]
    };
}
