"""The token cache: a family file tokenised once into a memory-mapped store (tokens, store), its build's
owner record and lock (build_owner), the file-hash memo (hash_memo) and the on-disk record columns used
while building (record_columns)."""
