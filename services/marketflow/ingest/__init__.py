"""Sources of records: files (JSON lines, CSV, gzip) and the Kafka publisher."""
