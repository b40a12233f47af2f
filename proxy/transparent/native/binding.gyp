{
  "targets": [
    {
      "target_name": "original_dst",
      "sources": ["original-dst.c"],
      "cflags": ["-Wall", "-O2"]
    }
  ]
}
