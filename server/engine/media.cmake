# Owned by the media component: PNG, image, audio (WAV), text and embedding
# (projector) summaries.
tblog_engine_component(tblog_engine_media
  png.cc
  image_summary.cc
  audio_summary.cc
  text_summary.cc
  embedding.cc
)
target_link_libraries(tblog_engine_media PUBLIC tblog_engine_io PRIVATE PNG::PNG ZLIB::ZLIB)
