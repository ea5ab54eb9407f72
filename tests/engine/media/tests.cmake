# Tests of the media component (images, audio, text, embeddings, GIF).
tblog_add_test(png_test SOURCES engine/media/png_test.cc LIBS tblog_engine_media)
tblog_add_test(image_summary_test SOURCES engine/media/image_summary_test.cc LIBS tblog_engine_media)
tblog_add_test(audio_summary_test SOURCES engine/media/audio_summary_test.cc LIBS tblog_engine_media)
tblog_add_test(text_summary_test SOURCES engine/media/text_summary_test.cc LIBS tblog_engine_media)
tblog_add_test(embedding_test SOURCES engine/media/embedding_test.cc LIBS tblog_engine_media)
tblog_add_test(gif_test SOURCES engine/media/gif_test.cc LIBS tblog_engine_media)
tblog_add_test(sprite_test SOURCES engine/media/sprite_test.cc LIBS tblog_engine_media)
tblog_add_test(png_writer_test SOURCES engine/media/png_writer_test.cc
  LIBS tblog_engine_media ZLIB::ZLIB)
