package checker

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func r(v uint64, b int64) BankRead { return BankRead{Version: v, Balance: b} }

func TestBankSerializable(t *testing.T) {
	initial := map[string]BankRead{"x": r(0, 100), "y": r(0, 0)}
	tests := []struct {
		name  string
		txns  []BankTxn
		final map[string]BankRead
		want  porcupine.CheckResult
	}{
		{"one after the other", []BankTxn{
			{ID: "T1", Call: 1, Return: 2, Reads: map[string]BankRead{"x": r(0, 100)}, Deltas: map[string]int64{"x": -50, "y": 50}},
			{ID: "T2", Call: 3, Return: 4, Reads: map[string]BankRead{"x": r(1, 50), "y": r(1, 50)}, Deltas: map[string]int64{"x": -25, "y": 25}},
		}, map[string]BankRead{"x": r(2, 25), "y": r(2, 75)}, porcupine.Ok},
		{"overlapping, in the order the reads say", []BankTxn{
			{ID: "T2", Call: 1, Return: 10, Reads: map[string]BankRead{"x": r(1, 50)}, Deltas: map[string]int64{"x": -25, "y": 25}},
			{ID: "T1", Call: 2, Return: 3, Reads: map[string]BankRead{"x": r(0, 100)}, Deltas: map[string]int64{"x": -50, "y": 50}},
		}, map[string]BankRead{"x": r(2, 25), "y": r(2, 75)}, porcupine.Ok},
		{"lost update: both read version 0 and both wrote", []BankTxn{
			{ID: "T1", Call: 1, Return: 4, Reads: map[string]BankRead{"x": r(0, 100)}, Deltas: map[string]int64{"x": -50, "y": 50}},
			{ID: "T2", Call: 2, Return: 5, Reads: map[string]BankRead{"x": r(0, 100)}, Deltas: map[string]int64{"x": -50, "y": 50}},
		}, map[string]BankRead{"x": r(2, 0), "y": r(2, 100)}, porcupine.Illegal},
		{"a stale read after the writer returned", []BankTxn{
			{ID: "T1", Call: 1, Return: 2, Reads: map[string]BankRead{"x": r(0, 100)}, Deltas: map[string]int64{"x": -50, "y": 50}},
			{ID: "T2", Call: 3, Return: 4, Reads: map[string]BankRead{"y": r(0, 0)}},
		}, map[string]BankRead{"x": r(1, 50), "y": r(1, 50)}, porcupine.Illegal},
		{"final balances no order gives", []BankTxn{
			{ID: "T1", Call: 1, Return: 2, Reads: map[string]BankRead{"x": r(0, 100)}, Deltas: map[string]int64{"x": -50, "y": 50}},
		}, map[string]BankRead{"x": r(1, 60), "y": r(1, 50)}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, vs := CheckBankSerializable(initial, tt.txns, tt.final, 5*time.Second)
			if res != tt.want || (res == porcupine.Illegal) != (len(vs) == 1) {
				t.Fatalf("got %v %v, want %v", res, vs, tt.want)
			}
			if len(vs) == 1 && vs[0].Kind != KindSerializability {
				t.Fatalf("violation %v", vs[0])
			}
		})
	}
}
