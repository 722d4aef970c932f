package memstore_test

import (
	"testing"

	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
	"github.com/mfakit/mfakit/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Store { return memstore.New() })
}
