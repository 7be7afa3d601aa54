package imagewriter

import (
	"context"
	"fmt"
	"io"
)

// Encoder turns one block of input into its encoded form. Each worker of
// EncodeBlocks has its own (encoders keep state).
type Encoder[T any] func(in []byte) (T, error)

// EncodeBlocks reads src in blocks of size bytes (the last one shorter;
// an empty src still gives one empty block), encodes them on workers
// goroutines, each with an Encoder from newEncoder, and hands every block
// with its result to emit in input order. It is how imprint writes images
// of independent members or frames (indexed gzip, multi-frame zstd).
// Memory is about 2 × workers blocks. The first error (read: …, an
// encoder's, emit's) ends it.
func EncodeBlocks[T any](ctx context.Context, src io.Reader, size, workers int, newEncoder func() (Encoder[T], error),
	emit func(in []byte, out T) error) error {
	type job struct {
		in   []byte
		out  T
		err  error
		done chan struct{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *job, workers)  // to the encoders
	order := make(chan *job, workers) // to emit, in input order
	encs := make([]Encoder[T], workers)
	for i := range encs {
		enc, err := newEncoder()
		if err != nil {
			return err
		}
		encs[i] = enc
	}
	for _, enc := range encs {
		go func() {
			for j := range work {
				j.out, j.err = enc(j.in)
				close(j.done)
			}
		}()
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(order)
		defer close(work)
		send := func(ch chan<- *job, j *job) bool {
			select {
			case ch <- j:
				return true
			case <-ctx.Done():
				readErr <- ctx.Err()
				return false
			}
		}
		for first := true; ; first = false {
			buf := make([]byte, size)
			n, err := io.ReadFull(src, buf)
			if n > 0 || first {
				j := &job{in: buf[:n], done: make(chan struct{})}
				if !send(order, j) || !send(work, j) {
					return
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				readErr <- nil
				return
			}
			if err != nil {
				readErr <- fmt.Errorf("read: %w", err)
				return
			}
		}
	}()
	for j := range order {
		select {
		case <-j.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if j.err != nil {
			return j.err
		}
		if err := emit(j.in, j.out); err != nil {
			return err
		}
	}
	return <-readErr
}
