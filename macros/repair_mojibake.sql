{#- Undoes one level of the feed's mojibake: text that was encoded as UTF-8
    and then read back as latin-1, so "Désir" arrived as "DÃ©sir". The log
    feed often does this twice ("DÃ\u0083Â©sir"), so staging applies the
    macro twice, in two steps.

    A text is repaired only when every character is ASCII or part of a
    well-formed UTF-8 byte sequence spelled in latin-1 characters, and at
    least one such sequence is there; anything else (clean accented text,
    other scripts, a lone "Ã") is returned unchanged. The check is exact, so
    the decode below can never fail the build. -#}
{% macro repair_mojibake(expression) -%}
    {{ return(adapter.dispatch('repair_mojibake', 'sparkify')(expression)) }}
{%- endmacro %}

{% macro default__repair_mojibake(expression) -%}
    {{ exceptions.raise_compiler_error(
        "repair_mojibake has no implementation for " ~ adapter.type()
        ~ ": add a " ~ adapter.type() ~ "__repair_mojibake macro"
    ) }}
{%- endmacro %}

{% macro postgres__repair_mojibake(expression) -%}
    case
        -- The cheap test first: most text holds no such pair at all.
        when
            {{ expression }} ~ '[\u00C2-\u00F4][\u0080-\u00BF]'
            -- Only ASCII and well-formed UTF-8 sequences (RFC 3629: no
            -- overlongs, no surrogates, nothing above U+10FFFF), each byte
            -- spelled as one latin-1 character.
            and {{ expression }} ~ (
                '^(?:[\u0001-\u007F]'
                || '|[\u00C2-\u00DF][\u0080-\u00BF]'
                || '|\u00E0[\u00A0-\u00BF][\u0080-\u00BF]'
                || '|[\u00E1-\u00EC\u00EE\u00EF][\u0080-\u00BF]{2}'
                || '|\u00ED[\u0080-\u009F][\u0080-\u00BF]'
                || '|\u00F0[\u0090-\u00BF][\u0080-\u00BF]{2}'
                || '|[\u00F1-\u00F3][\u0080-\u00BF]{3}'
                || '|\u00F4[\u0080-\u008F][\u0080-\u00BF]{2}'
                || ')*$'
            )
            then convert_from(convert_to({{ expression }}, 'LATIN1'), 'UTF8')
        else {{ expression }}
    end
{%- endmacro %}

{#- Spark: Java regular expressions, where a group repeated over a long text
    recurses once per repetition (a stack overflow on a long value). The
    same test without one: every well-formed sequence removed, nothing but
    ASCII is left. The sequences are told apart by their first character, so
    removing them left to right parses the text as the pattern above does. -#}
{% macro spark__repair_mojibake(expression) -%}
    case
        when
            {{ expression }} rlike '[\\u00C2-\\u00F4][\\u0080-\\u00BF]'
            and not regexp_replace(
                {{ expression }},
                '[\\u00C2-\\u00DF][\\u0080-\\u00BF]'
                || '|\\u00E0[\\u00A0-\\u00BF][\\u0080-\\u00BF]'
                || '|[\\u00E1-\\u00EC\\u00EE\\u00EF][\\u0080-\\u00BF]{2}'
                || '|\\u00ED[\\u0080-\\u009F][\\u0080-\\u00BF]'
                || '|\\u00F0[\\u0090-\\u00BF][\\u0080-\\u00BF]{2}'
                || '|[\\u00F1-\\u00F3][\\u0080-\\u00BF]{3}'
                || '|\\u00F4[\\u0080-\\u008F][\\u0080-\\u00BF]{2}',
                ''
            ) rlike '[^\\u0001-\\u007F]'
            then decode(encode({{ expression }}, 'ISO-8859-1'), 'UTF-8')
        else {{ expression }}
    end
{%- endmacro %}
