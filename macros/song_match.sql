{#- The rule that ties a play to a catalogue song, as a join condition
    between a relation of plays (song_match_key, artist_match_key,
    song_length) and one of songs (title_match_key, artist_match_key,
    duration): the same title and artist once text is repaired and
    normalized (see text_match_key), and a duration within
    var('song_match_duration_tolerance_seconds') of the logged length.
    An equi-join on the two keys, so it stays a hash join at any size. -#}
{% macro song_match(plays, songs) -%}
    {%- set tolerance = var('song_match_duration_tolerance_seconds') -%}
    {{ plays }}.song_match_key = {{ songs }}.title_match_key
    and {{ plays }}.artist_match_key = {{ songs }}.artist_match_key
    and abs({{ plays }}.song_length - {{ songs }}.duration) <= {{ tolerance }}
{%- endmacro %}

{#- The first, exact rule, kept so the two can be compared: the title,
    artist and length exactly as logged (only trimmed) equal the song's. -#}
{% macro song_match_is_exact(plays, songs) -%}
    (
        {{ plays }}.song_title_as_logged = {{ songs }}.title
        and {{ plays }}.artist_name_as_logged = {{ songs }}.artist_name
        and {{ plays }}.song_length = {{ songs }}.duration
    )
{%- endmacro %}
