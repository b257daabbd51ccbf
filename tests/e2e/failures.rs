//! What bad input and misbehaving guests get.
