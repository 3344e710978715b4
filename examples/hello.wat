;; hello.wat: the smallest WASI job. fogctl compiles .wat itself (no toolchain needed).
;; It prints one line to stdout and writes /work/hello.txt (collected as an output).
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close"
    (func $fd_close (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from a fogctl WASM job\n")
  (data (i32.const 64) "hello.txt")
  (func (export "_start")
    ;; iovec at 0: {buf=16, len=29}
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 29))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    ;; open /work/hello.txt (fd 3 is the preopened /work): O_CREAT|O_TRUNC, rights fd_write
    (if (i32.eqz (call $path_open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 9)
                   (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 12)))
      (then
        (drop (call $fd_write (i32.load (i32.const 12)) (i32.const 0) (i32.const 1) (i32.const 8)))
        (drop (call $fd_close (i32.load (i32.const 12))))))))
