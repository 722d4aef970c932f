package memstore_test

import (
	"testing"

	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
	"github.com/mfakit/mfakit/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(testing.TB) storage.Store { return memstore.New() })
}

func BenchmarkStore(b *testing.B) {
	storagetest.Benchmark(b, func(testing.TB) storage.Store { return memstore.New() })
}
