//! What went wrong in a store, and whose fault it is.
//!
//! Every error has an [`ErrorClass`]: the worker retries only [`ErrorClass::Unavailable`], the
//! API answers 4xx only for the client's own faults. The class is decided here, once, from the
//! error itself (a PostgreSQL SQLSTATE, an SQLite result code), never from its text.

/// Whose fault an error is, and whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorClass {
    /// The input or request can never succeed as given (permanent).
    BadInput,
    /// What was asked for does not exist.
    NotFound,
    /// The request conflicts with the state it found (permanent for this request).
    Conflict,
    /// A newer state of the same object was committed or announced: nothing was changed, and
    /// nothing needs to be.
    Superseded,
    /// An infrastructure fault that may pass: connection refused or reset, failover, a
    /// serialization failure or deadlock, a lock timeout, a busy database (transient).
    Unavailable,
    /// A fault of geoflow or of the database's own state (permanent until someone acts).
    Internal,
}

impl ErrorClass {
    /// Whether the same request may succeed later.
    pub fn is_transient(self) -> bool {
        self == ErrorClass::Unavailable
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::BadInput => "bad-input",
            ErrorClass::NotFound => "not-found",
            ErrorClass::Conflict => "conflict",
            ErrorClass::Superseded => "superseded",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Internal => "internal",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot open the store at {location}: {reason}")]
    Open { location: String, reason: String },
    #[error("the store at {location} is not usable: {reason}")]
    Incompatible { location: String, reason: String },
    #[error("database error while {context}: {source}")]
    Database {
        context: String,
        class: ErrorClass,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the load of {dataset}/{source_key} ended without a commit or abort")]
    Interrupted { dataset: String, source_key: String },
    /// The request or the data is not acceptable as given: the client's fault.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with what the store holds (a dataset name taken by a table
    /// geoflow does not manage, say).
    #[error("{0}")]
    Conflict(String),
    /// The catalog has no such entry (a job id, say).
    #[error("no {what} with id {id:?}")]
    NotFound { what: &'static str, id: String },
    /// Storage holds a newer state of the object than the one this change reflects.
    #[error("{dataset}/{source_key} was superseded: {reason}")]
    Superseded { dataset: String, source_key: String, reason: String },
    /// What the dataset asks of a load's rows changed while they were read (its upsert key):
    /// read them again.
    #[error("{dataset}: {reason}; load it again")]
    SettingsChanged { dataset: String, reason: String },
    /// A broken invariant of geoflow or of the stored data: nobody's request is at fault.
    #[error("{0}")]
    Internal(String),
    /// A load that failed with `error` and was rolled back, recorded in the load history as
    /// `load_id` (a load whose failure could not be recorded returns the error alone).
    #[error("{error}")]
    Recorded { load_id: i64, error: Box<StoreError> },
}

impl StoreError {
    /// A database error whose class is not known: treated as a passing fault.
    pub fn db(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::classified(context, ErrorClass::Unavailable, source)
    }

    pub fn classified(
        context: impl Into<String>,
        class: ErrorClass,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError::Database { context: context.into(), class, source: Box::new(source) }
    }

    /// The error itself, whether or not its load was recorded.
    pub fn root(&self) -> &StoreError {
        match self {
            StoreError::Recorded { error, .. } => error.root(),
            e => e,
        }
    }

    /// The load history's id of the failed load, when it was recorded.
    pub fn recorded_load(&self) -> Option<i64> {
        match self {
            StoreError::Recorded { load_id, .. } => Some(*load_id),
            _ => None,
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Recorded { error, .. } => error.class(),
            StoreError::Open { .. } | StoreError::Interrupted { .. } | StoreError::SettingsChanged { .. } => {
                ErrorClass::Unavailable
            }
            // A catalog at another step than this build's: only migrating (or upgrading) helps.
            StoreError::Incompatible { .. } => ErrorClass::Internal,
            StoreError::Database { class, .. } => *class,
            StoreError::Invalid(_) => ErrorClass::BadInput,
            StoreError::NotFound { .. } => ErrorClass::NotFound,
            StoreError::Conflict(_) => ErrorClass::Conflict,
            StoreError::Superseded { .. } => ErrorClass::Superseded,
            StoreError::Internal(_) => ErrorClass::Internal,
        }
    }

    /// Infrastructure faults are worth retrying; bad requests are not.
    pub fn is_transient(&self) -> bool {
        self.class().is_transient()
    }
}

/// The class of a PostgreSQL error, from its SQLSTATE (PostgreSQL manual, appendix A).
pub fn class_of_sqlstate(code: &str) -> ErrorClass {
    match code {
        // Serialization failure, deadlock, lock not available, statement/idle timeouts.
        "40001" | "40P01" | "55P03" | "57014" | "25P03" => ErrorClass::Unavailable,
        // A read-only transaction: the server is a standby (a failover in progress).
        "25006" => ErrorClass::Unavailable,
        // Values the database cannot hold as given: NUL in text, an unsupported Unicode
        // escape, invalid encoding, numbers out of range, too many columns.
        "22P05" | "22021" | "22003" | "54011" | "54000" | "54001" => ErrorClass::BadInput,
        // Objects that should exist and match the catalog but do not: the table was altered
        // underneath geoflow.
        _ if code.starts_with("42") => ErrorClass::Internal,
        // Other program limits (too many arguments, say): a statement of geoflow's own.
        _ if code.starts_with("54") => ErrorClass::Internal,
        // Connection exceptions, operator intervention (shutdown, crash recovery), resources
        // (disk full, out of memory, too many connections), system errors.
        _ if ["08", "57", "53", "58"].iter().any(|c| code.starts_with(c)) => ErrorClass::Unavailable,
        _ if code.starts_with("22") || code.starts_with("23") => ErrorClass::BadInput,
        _ if code.starts_with("XX") => ErrorClass::Internal,
        _ => ErrorClass::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_have_classes() {
        for (code, class) in [
            ("40001", ErrorClass::Unavailable),
            ("40P01", ErrorClass::Unavailable),
            ("55P03", ErrorClass::Unavailable),
            ("57P01", ErrorClass::Unavailable),
            ("08006", ErrorClass::Unavailable),
            ("25006", ErrorClass::Unavailable),
            ("53300", ErrorClass::Unavailable),
            ("22P05", ErrorClass::BadInput),
            ("54011", ErrorClass::BadInput),
            ("54023", ErrorClass::Internal),
            ("42703", ErrorClass::Internal),
            ("42P01", ErrorClass::Internal),
            ("XX001", ErrorClass::Internal),
        ] {
            assert_eq!(class_of_sqlstate(code), class, "{code}");
        }
    }

    #[test]
    fn only_unavailable_is_transient() {
        assert!(StoreError::Open { location: "x".into(), reason: "refused".into() }.is_transient());
        assert!(!StoreError::Invalid("bad".into()).is_transient());
        assert!(!StoreError::Internal("broken".into()).is_transient());
        let superseded = StoreError::Superseded { dataset: "d".into(), source_key: "k".into(), reason: "r".into() };
        assert_eq!(superseded.class(), ErrorClass::Superseded);
        assert!(!superseded.is_transient());
    }
}
