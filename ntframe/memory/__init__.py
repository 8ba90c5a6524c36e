"""Memory: HMC request traces (one canonical format, address mappings, converters), their generation from a
mapping's DRAM tile schedule, and the bank-level HMC model with its optional compiled streaming pass."""
