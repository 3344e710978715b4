;; A checkpointable WASM job for fogctl harvest: sum of i*i for i in [index_start, index_end),
;; wrapping at 2^64, returned as an i64. All progress lives in exported mutable globals, and
;; the loop body leaves them consistent at the loop header (where epoch interruption
;; happens), so fogctl can snapshot it at any interruption and resume it in a fresh
;; instance. fogctl harvest split sets index_start/index_end for each chunk.
(module
  (memory (export "memory") 1)
  ;; declares the snapshot contract, so fogctl submit snapshots it too (with a checkpoint)
  (global (export "fogctl:snapshot") i32 (i32.const 1))
  (global $index_start (export "index_start") (mut i64) (i64.const 0))
  (global $index_end (export "index_end") (mut i64) (i64.const 3000000000))
  (global $started (export "started") (mut i32) (i32.const 0))
  (global $i (export "i") (mut i64) (i64.const 0))
  (global $acc (export "acc") (mut i64) (i64.const 0))
  (func (export "run") (result i64)
    (if (i32.eqz (global.get $started))
      (then
        (global.set $i (global.get $index_start))
        (global.set $started (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (global.get $i) (global.get $index_end)))
        (global.set $acc (i64.add (global.get $acc) (i64.mul (global.get $i) (global.get $i))))
        (global.set $i (i64.add (global.get $i) (i64.const 1)))
        (br $next)))
    (global.get $acc)))
