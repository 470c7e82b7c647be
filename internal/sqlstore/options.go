package sqlstore

import "fmt"

// Configure applies a store's options to c in order. A nil option is an
// error naming the store; an option's own error (which names the option)
// is returned as it is.
func Configure[C any, O ~func(*C) error](store string, c *C, opts []O) error {
	for _, o := range opts {
		if o == nil {
			return fmt.Errorf("%s: nil Option", store)
		}
		if err := o(c); err != nil {
			return err
		}
	}
	return nil
}
