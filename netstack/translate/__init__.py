"""IPv4/IPv6 translation: table 230 (`table`), its IPv4 pool (`pool`), RFC 6052 address
embedding (`rfc6052`) and RFC 7915 header translation (`rfc7915`). Pure code, no I/O except
`TranslationTable.save`/`load`."""
