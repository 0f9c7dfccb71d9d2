//! Reading a setting from its flag or, failing that, its environment variable. The environment
//! is read through a lookup function so tests pass their own variables instead of mutating the
//! process's.

use super::ConfigError;

/// The environment as seen through a lookup function.
pub(super) struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    pub(super) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Env { lookup }
    }

    /// A variable exactly as set, empty or not (for `HOSTNAME`, which is trimmed later).
    pub(super) fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// Reads a variable, treating an empty value as unset.
    pub(super) fn var(&self, name: &str) -> Option<String> {
        self.raw(name).filter(|v| !v.trim().is_empty())
    }

    /// The flag if given, else the variable.
    pub(super) fn or(&self, flag: Option<String>, var: &str) -> Option<String> {
        flag.or_else(|| self.var(var))
    }

    /// The flag if given, else the variable parsed as a number.
    ///
    /// # Errors
    /// The variable is set but does not parse; the message names the variable.
    pub(super) fn num<T: std::str::FromStr>(
        &self,
        flag: Option<T>,
        var: &str,
    ) -> Result<Option<T>, ConfigError> {
        if flag.is_some() {
            return Ok(flag);
        }
        match self.var(var) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ConfigError(format!("{var}={v:?} is not a valid number"))),
        }
    }

    /// A switch is on if its flag is given or its variable says 1, true, yes or on.
    pub(super) fn switch(&self, flag: bool, var: &str) -> bool {
        flag || self
            .var(var)
            .is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes" | "on"))
    }
}

/// The trimmed, non-empty items of a comma-separated list.
pub(super) fn comma_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}
