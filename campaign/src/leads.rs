//! Lead list import.
