{#- The rule that ties a play to a catalogue song, as a join condition
    between a relation of plays (song_title, artist_name, song_length) and
    one of songs (title, artist_name, duration). For now an exact match on
    all three (both sides already trimmed in staging); a later issue extends
    it here, in one place, with mojibake repair and a duration tolerance. -#}
{% macro song_match(plays, songs) -%}
    {{ plays }}.song_title = {{ songs }}.title
    and {{ plays }}.artist_name = {{ songs }}.artist_name
    and {{ plays }}.song_length = {{ songs }}.duration
{%- endmacro %}
