//! Model statistics: op counts, parameters, multiply-accumulates.
