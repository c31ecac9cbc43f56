package handlers

// FieldError is a bad value of one field of a configuration of this package (HandoffConfig,
// Agent, RateLimitConfig), as their Validate methods report it: a program reading its
// settings from a file maps Field to where the value was written.
type FieldError struct {
	// Field is the field's name in the Go struct, such as "Agents" or "Every".
	Field string
	// Err says what is wrong with the value.
	Err error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *FieldError) Unwrap() error { return e.Err }
