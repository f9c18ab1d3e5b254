//! Tests of the configuration model.
