{#- A SQL boolean: `page` reads like a song play but is not spelled
    `NextSong` ("nextsong", "NEXTSONG", "Next Song", "next_song"). Such
    events are not plays (the feed's contract is the exact value, and
    eventsim writes nothing else); they are counted, so none vanishes
    unseen. Portable SQL. -#}
{% macro is_play_like_page(page) -%}
    (
        {{ page }} <> 'NextSong'
        and lower(replace(replace({{ page }}, ' ', ''), '_', '')) = 'nextsong'
    )
{%- endmacro %}
