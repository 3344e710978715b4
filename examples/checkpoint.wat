;; checkpoint.wat: a counting job that survives preemption (HTCondor/BOINC style).
;; It keeps its count in <checkpoint>/count (the second preopened dir, fd 4), counts
;; to 40 with a 25 ms pause per step, and when fogctl asks it to stop (the file
;; .fogctl-stop appears in the checkpoint dir) it exits 85: "checkpointed, run me
;; again". A rerun resumes from the saved count. Output: "start N", "done N".
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "count")
  (data (i32.const 110) ".fogctl-stop")
  (data (i32.const 200) "start ")
  (data (i32.const 210) "done ")
  (data (i32.const 220) "checkpointed at ")
  (data (i32.const 240) "\n")
  (global $target i32 (i32.const 40))

  ;; write len bytes at ptr to stdout
  (func $out (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))

  ;; decimal digits of n at 16.., returns the length
  (func $fmt (param $n i32) (result i32)
    (local $len i32) (local $i i32) (local $t i32)
    (local.set $t (local.get $n))
    (loop $count
      (local.set $len (i32.add (local.get $len) (i32.const 1)))
      (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
      (br_if $count (i32.ne (local.get $t) (i32.const 0))))
    (local.set $i (local.get $len))
    (local.set $t (local.get $n))
    (loop $digits
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (i32.const 16) (local.get $i))
        (i32.add (i32.const 48) (i32.rem_u (local.get $t) (i32.const 10))))
      (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
      (br_if $digits (i32.gt_u (local.get $i) (i32.const 0))))
    (local.get $len))

  (func $say (param $ptr i32) (param $plen i32) (param $n i32)
    (call $out (local.get $ptr) (local.get $plen))
    (call $out (i32.const 16) (call $fmt (local.get $n)))
    (call $out (i32.const 240) (i32.const 1)))

  (func $read_count (result i32)
    (local $fd i32) (local $n i32) (local $i i32) (local $len i32) (local $c i32)
    (if (call $path_open (i32.const 4) (i32.const 0) (i32.const 100) (i32.const 5)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 12))
      (then (return (i32.const 0))))
    (local.set $fd (i32.load (i32.const 12)))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $fd_read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
    (drop (call $fd_close (local.get $fd)))
    (local.set $len (i32.load (i32.const 8)))
    (block $end
      (loop $parse
        (br_if $end (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $c (i32.load8_u (i32.add (i32.const 16) (local.get $i))))
        (br_if $end (i32.lt_u (local.get $c) (i32.const 48)))
        (br_if $end (i32.gt_u (local.get $c) (i32.const 57)))
        (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10))
                               (i32.sub (local.get $c) (i32.const 48))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $parse)))
    (local.get $n))

  (func $write_count (param $n i32)
    (local $fd i32)
    (if (call $path_open (i32.const 4) (i32.const 0) (i32.const 100) (i32.const 5)
          (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 12))
      (then (call $exit (i32.const 70))))
    (local.set $fd (i32.load (i32.const 12)))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (call $fmt (local.get $n)))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
    (drop (call $fd_close (local.get $fd))))

  (func $stop_requested (result i32)
    (if (call $path_open (i32.const 4) (i32.const 0) (i32.const 110) (i32.const 12)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 12))
      (then (return (i32.const 0))))
    (drop (call $fd_close (i32.load (i32.const 12))))
    (i32.const 1))

  ;; sleep 25 ms: one relative clock subscription (at 256), event at 320
  (func $nap
    (i64.store (i32.const 256) (i64.const 0))
    (i32.store8 (i32.const 264) (i32.const 0))
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280) (i64.const 25000000))
    (i64.store (i32.const 288) (i64.const 0))
    (i32.store16 (i32.const 296) (i32.const 0))
    (drop (call $poll (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 360))))

  (func (export "_start")
    (local $n i32)
    (local.set $n (call $read_count))
    (call $say (i32.const 200) (i32.const 6) (local.get $n))
    (loop $work
      (if (i32.ge_u (local.get $n) (global.get $target))
        (then
          (call $say (i32.const 210) (i32.const 5) (local.get $n))
          (return)))
      (if (call $stop_requested)
        (then
          (call $say (i32.const 220) (i32.const 16) (local.get $n))
          (call $exit (i32.const 85))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (call $write_count (local.get $n))
      (call $nap)
      (br $work))))
