"""The functions a query may call: built-in, side-effect free, and blind to the server.

An allow-list, not a deny-list: a function PostgreSQL adds in a later release, or one
an extension installs, is refused until someone decides it is safe. Left out on
purpose: file access (pg_read_file, pg_ls_dir, lo_*), network (dblink*), sleeping
(pg_sleep*), settings (set_config, current_setting), processes and backends
(pg_cancel_backend, pg_terminate_backend), locks (pg_advisory_*), sequences (nextval,
setval), catalog and size probes (to_regclass, pg_relation_size, has_*_privilege,
version), functions that run SQL given as text (query_to_xml, ts_stat, ...) and
notification (pg_notify).
"""

from __future__ import annotations

__all__ = ["ALLOWED_FUNCTIONS", "REFUSED_TYPES"]

_AGGREGATES = """
avg bit_and bit_or bit_xor bool_and bool_or count every max min sum string_agg array_agg
json_agg jsonb_agg json_object_agg jsonb_object_agg json_agg_strict jsonb_agg_strict
json_objectagg json_arrayagg any_value
corr covar_pop covar_samp regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope
regr_sxx regr_sxy regr_syy stddev stddev_pop stddev_samp variance var_pop var_samp
mode percentile_cont percentile_disc rank dense_rank percent_rank cume_dist
range_agg range_intersect_agg xmlagg
"""

_WINDOW = "row_number ntile lag lead first_value last_value nth_value"

_MATH = """
abs cbrt ceil ceiling degrees div exp factorial floor gcd lcm ln log log10 min_scale mod pi
power pow radians round scale sign sqrt trim_scale trunc width_bucket random random_normal
acos acosd asin asind atan atan2 atan2d atand cos cosd cot cotd sin sind tan tand
sinh cosh tanh asinh acosh atanh erf erfc
"""

_STRING = """
ascii bit_length btrim char_length character_length chr concat concat_ws convert_from
convert_to decode encode format initcap left length lower lpad ltrim md5 normalize
octet_length overlay parse_ident position quote_ident quote_literal quote_nullable
regexp_count regexp_instr regexp_like regexp_match regexp_matches regexp_replace
regexp_split_to_array regexp_split_to_table regexp_substr repeat replace reverse right
rpad rtrim split_part starts_with string_to_array string_to_table strpos substr substring
to_ascii to_hex to_bin to_oct translate trim unistr upper casefold sha224 sha256 sha384 sha512
get_bit get_byte set_bit set_byte bit_count crc32 crc32c uuid_extract_timestamp
uuid_extract_version gen_random_uuid uuidv4 uuidv7 text_soundex
"""

_FORMATTING = "to_char to_date to_number to_timestamp"

_DATETIME = """
age clock_timestamp current_date current_time current_timestamp date_add date_bin
date_part date_subtract date_trunc extract isfinite justify_days justify_hours
justify_interval localtime localtimestamp make_date make_interval make_time
make_timestamp make_timestamptz now statement_timestamp timeofday
transaction_timestamp timezone overlaps
"""

_CONDITIONAL_AND_ARRAYS = """
array_append array_cat array_dims array_fill array_length array_lower array_ndims
array_position array_positions array_prepend array_remove array_replace array_reverse
array_sample array_shuffle array_sort array_to_string array_upper cardinality trim_array
unnest generate_series generate_subscripts num_nonnulls num_nulls
lower_inc upper_inc lower_inf upper_inf isempty range_merge
int4range int8range numrange tsrange tstzrange daterange
"""

_JSON = """
to_json to_jsonb array_to_json row_to_json json_build_array jsonb_build_array
json_build_object jsonb_build_object json_object jsonb_object json_array_length
jsonb_array_length json_each jsonb_each json_each_text jsonb_each_text
json_extract_path jsonb_extract_path json_extract_path_text jsonb_extract_path_text
json_object_keys jsonb_object_keys json_array_elements jsonb_array_elements
json_array_elements_text jsonb_array_elements_text json_typeof jsonb_typeof
json_strip_nulls jsonb_strip_nulls jsonb_set jsonb_set_lax jsonb_insert jsonb_pretty
jsonb_path_exists jsonb_path_match jsonb_path_query jsonb_path_query_array
jsonb_path_query_first json_populate_record jsonb_populate_record json_to_record
jsonb_to_record json_to_recordset jsonb_to_recordset json_scalar json_serialize
"""

_TEXT_SEARCH = """
to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery ts_rank
ts_rank_cd ts_headline setweight strip tsvector_to_array array_to_tsvector numnode
querytree ts_delete ts_filter length
"""

_NETWORK_TYPES = """
abbrev broadcast family host hostmask inet_merge inet_same_family masklen netmask network
set_masklen
"""

_CASTS_AND_MISC = """
bool int2 int4 int8 float4 float8 numeric text varchar bpchar date time timestamp
timestamptz interval pg_typeof coalesce nullif greatest least xmlparse xmlserialize
xmlelement xmlforest xmlconcat
"""

ALLOWED_FUNCTIONS: frozenset[str] = frozenset(
    " ".join(
        [
            _AGGREGATES,
            _WINDOW,
            _MATH,
            _STRING,
            _FORMATTING,
            _DATETIME,
            _CONDITIONAL_AND_ARRAYS,
            _JSON,
            _TEXT_SEARCH,
            _NETWORK_TYPES,
            _CASTS_AND_MISC,
        ]
    ).split()
)

# Casting text to an object-identifier type looks names up in the catalogs.
_OBJECT_TYPES = """
regclass regcollation regconfig regdictionary regnamespace regoper regoperator regproc
regprocedure regrole regtype oid tid xid xid8 cid pg_lsn pg_snapshot txid_snapshot
"""
REFUSED_TYPES: frozenset[str] = frozenset(_OBJECT_TYPES.split())
